//! Clients for the calls toggled makes itself (Prometheus queries, release notifications, pushing
//! a release). TLS goes through rustls with ring, the provider the database driver already
//! links, so the binary carries one TLS implementation.

/// Makes ring the process's rustls provider (once; a provider installed earlier stays).
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // `Err` means a provider is installed already, which is what is needed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client builder with the TLS provider in place.
pub fn client() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
}

/// A URL as logs may show it: scheme, host and port only. Credentials (`user:pass@`), the path
/// (a Slack webhook's secret lives there) and the query are replaced by `...`.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = !u.username().is_empty() || u.password().is_some() || u.path() != "/" || u.query().is_some();
            format!("{}://{host}{port}{}", u.scheme(), if hidden { "/..." } else { "" })
        }
        Err(_) => "(an unparseable URL)".to_owned(),
    }
}

/// An outgoing call's error without the URL it was sent to (reqwest puts it in the text).
pub fn error_text(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_logs_keep_only_scheme_host_and_port() {
        assert_eq!(super::redact("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com/...");
        assert_eq!(super::redact("http://user:pw@prom:9090"), "http://prom:9090/...");
        assert_eq!(super::redact("http://prom:9090/"), "http://prom:9090");
        assert_eq!(super::redact("https://x.example/hook?token=abc"), "https://x.example/...");
    }

    #[test]
    fn a_client_with_tls_builds() {
        let client = super::client().https_only(true).build();
        assert!(client.is_ok(), "{client:?}");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
