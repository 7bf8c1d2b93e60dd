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

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_with_tls_builds() {
        let client = super::client().https_only(true).build();
        assert!(client.is_ok(), "{client:?}");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
