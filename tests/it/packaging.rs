//! What ships besides the binary: the Dockerfile builds from the files it copies (CI has no
//! Docker daemon, so every path the build reads is checked against its `COPY` lines), base
//! images are pinned, the image checks its own health, and docker-compose is the replicated
//! topology with its secrets from the environment.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The sources of the build stage's `COPY` lines (the stage before the second `FROM`).
fn build_stage_copies(dockerfile: &str) -> Vec<String> {
    // Before the first `FROM` are comments; the build stage runs to the second.
    let build = dockerfile.split("\nFROM ").nth(1).expect("a build stage");
    build
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[..parts.len() - 1].iter().map(|s| s.trim_end_matches('/').to_owned()).collect::<Vec<_>>()
        })
        .collect()
}

/// Every file a Rust source embeds (`include_str!`, `include_bytes!`), relative to the root.
fn embedded_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            embedded_files(&path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        for macro_name in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = &text[at + macro_name.len()..];
                let literal = &rest[..rest.find('"').expect("closing quote")];
                let mut resolved = PathBuf::new();
                for c in path.parent().expect("a directory").join(literal).components() {
                    match c {
                        Component::ParentDir => {
                            resolved.pop();
                        }
                        other => resolved.push(other),
                    }
                }
                out.push(resolved.strip_prefix(ROOT).expect("inside the repository").to_path_buf());
            }
        }
    }
}

#[test]
fn the_image_build_reads_only_files_the_dockerfile_copies() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    let copied = build_stage_copies(&dockerfile);
    let is_copied = |p: &Path| copied.iter().any(|c| p.starts_with(c));
    let mut embedded = Vec::new();
    embedded_files(&Path::new(ROOT).join("src"), &mut embedded);
    assert!(embedded.iter().any(|p| p.starts_with("ui")), "the console is embedded: {embedded:?}");
    for file in &embedded {
        assert!(Path::new(ROOT).join(file).is_file(), "{} is embedded and exists", file.display());
        assert!(is_copied(file), "{} is embedded but the Dockerfile does not copy it", file.display());
    }
    // Cargo reads every target the manifest declares.
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).expect("Cargo.toml");
    for (section, dir) in [("[[bench]]", "benches"), ("[[example]]", "examples")] {
        if manifest.contains(section) {
            assert!(is_copied(Path::new(dir)), "Cargo.toml declares {section} targets: {dir} must be copied");
        }
    }
    for needed in ["Cargo.toml", "Cargo.lock", "src", "migrations"] {
        assert!(is_copied(Path::new(needed)), "{needed} is copied");
    }
}

#[test]
fn base_images_are_pinned_and_the_image_checks_its_health() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    let froms: Vec<&str> = dockerfile.lines().filter_map(|l| l.strip_prefix("FROM ")).collect();
    assert_eq!(froms.len(), 2);
    for from in froms {
        let image = from.split_whitespace().next().expect("an image");
        let tag = image.split_once(':').map(|(_, t)| t).expect("a tag");
        assert!(tag.split(['.', '-']).filter(|p| p.chars().all(|c| c.is_ascii_digit())).count() >= 2, "{image}");
    }
    assert!(dockerfile.contains("ca-certificates"), "a trust store for HTTPS calls");
    assert!(dockerfile.contains(r#"HEALTHCHECK"#) && dockerfile.contains(r#"CMD ["toggled", "probe"]"#));
}

/// `toggled probe` (the image's health check): 0 against a live server, 1 against nothing.
#[test]
fn the_probe_command_reports_a_live_server() {
    let dir = crate::support::Workdir::new(include_str!("../../flags/feature-flags.yaml"));
    let server = crate::support::Server::start(&dir, &[]);
    let probe = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_toggled"))
            .args(["probe", "--url", url])
            .output()
            .expect("runs")
            .status
            .code()
    };
    assert_eq!(probe(&server.url("/health")), Some(0));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    assert_eq!(probe(&format!("http://{addr}/health")), Some(1));
}

#[test]
fn compose_runs_two_replicas_on_postgres_with_secrets_from_the_environment() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).expect("compose");
    let compose: Value = serde_saphyr::from_str(&text).expect("compose parses");
    let services = compose["services"].as_object().expect("services");
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["alertmanager", "postgres", "prometheus", "toggled-1", "toggled-2"]);
    for (name, service) in services {
        let image = service["image"].as_str().unwrap_or_else(|| panic!("{name} names its image"));
        let tag = image.split_once(':').map(|(_, t)| t).unwrap_or_else(|| panic!("{name}: {image} has a tag"));
        assert!(tag == "local" || tag.chars().any(|c| c.is_ascii_digit()), "{name}: {image} is pinned");
        assert!(service["healthcheck"]["test"].is_array(), "{name} has a health check");
        for port in service["ports"].as_array().into_iter().flatten() {
            assert!(port.as_str().is_some_and(|p| p.starts_with("${TOGGLED_BIND:-127.0.0.1}:")), "{name}: {port}");
        }
    }
    for replica in ["toggled-1", "toggled-2"] {
        let env = &services[replica]["environment"];
        assert!(env["TOGGLED_DATABASE"].as_str().is_some_and(|d| d.starts_with("postgres://")), "{replica}");
        assert!(env["TOGGLED_ADMIN_TOKENS"].as_str().is_some_and(|t| t.starts_with("${TOGGLED_ADMIN_TOKENS:?")));
        assert!(
            env["TOGGLED_RECEIVER_TOKENS"].as_str().is_some_and(|t| t.contains("${TOGGLED_RECEIVER_SECRET:?")),
            "{replica} accepts Alertmanager's token"
        );
        assert_eq!(services[replica]["depends_on"]["postgres"]["condition"], "service_healthy");
    }
    // Alertmanager sends the same secret, from the file compose writes.
    assert_eq!(compose["configs"]["receiver-token"]["content"], "${TOGGLED_RECEIVER_SECRET}");
    let target = services["alertmanager"]["configs"][0]["target"].as_str().expect("the token file");
    let alertmanager = std::fs::read_to_string(Path::new(ROOT).join("deploy/alertmanager.yml")).expect("config");
    let alertmanager: Value = serde_saphyr::from_str(&alertmanager).expect("parses");
    let hooks = alertmanager["receivers"][0]["webhook_configs"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 2, "both replicas");
    for hook in hooks {
        assert_eq!(hook["http_config"]["authorization"]["credentials_file"], target);
    }
    for file in ["docker-compose.yml", "deploy/alertmanager.yml", "deploy/prometheus.yml"] {
        let text = std::fs::read_to_string(Path::new(ROOT).join(file)).expect("read");
        assert!(!text.contains("change-me"), "no shipped secret in {file}");
    }
    let readme = include_str!("../../README.md");
    assert!(readme.contains("docker build -t toggled .") && readme.contains("docker run --rm -p 127.0.0.1:8080:8080"));
}
