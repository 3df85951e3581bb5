//! The configuration files shipped in `deploy/` and `config/` are valid: a manifest
//! that drifts from the config schema fails here, not in someone's cluster.

use portcullis::Config;
use std::path::Path;

/// The `portcullis.toml: |` block scalar of a Kubernetes ConfigMap, unindented.
fn embedded_config(manifest: &str) -> String {
    let lines = manifest.lines().skip_while(|line| !line.trim_end().ends_with("portcullis.toml: |")).skip(1);
    let first = lines.clone().find(|l| !l.trim().is_empty()).expect("the block has content");
    let indent = first.len() - first.trim_start().len();
    lines
        .take_while(|line| line.trim().is_empty() || line.len() - line.trim_start().len() >= indent)
        .map(|line| line.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kubernetes_configmaps_are_valid_configs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["deploy/kubernetes/sidecar.yaml", "deploy/kubernetes/standalone.yaml"] {
        let manifest = std::fs::read_to_string(root.join(name)).unwrap();
        let toml = embedded_config(&manifest);
        assert!(toml.contains("[[route]]"), "{name}: no config found");
        let config = Config::from_sources(&toml, Path::new(name), std::iter::empty())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(
            config.server.admin_listen.to_string(),
            "0.0.0.0:9090",
            "{name}: probes need a pod-reachable admin port"
        );
        assert!(config.server.workers <= 2, "{name}: set workers explicitly");
    }
}

/// The config with the commented login block switched on.
fn with_login_uncommented(toml: &str) -> String {
    let mut in_block = false;
    toml.lines()
        .map(|line| {
            if line.contains("Login: uncomment") {
                in_block = true;
                return String::new();
            }
            match (in_block, line.strip_prefix("# ")) {
                // Only the commented-out config, not the prose around it.
                (true, Some(rest)) if rest.starts_with('[') || rest.contains(" = ") || rest.starts_with('#') => {
                    rest.to_owned()
                }
                (true, None) if line == "#" => String::new(),
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kubernetes_login_blocks_are_valid_once_uncommented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["deploy/kubernetes/sidecar.yaml", "deploy/kubernetes/standalone.yaml"] {
        let toml = with_login_uncommented(&embedded_config(&std::fs::read_to_string(root.join(name)).unwrap()));
        // The secrets arrive as the manifests wire them: environment overrides.
        let env = [
            ("PORTCULLIS_SESSION__COOKIE_KEYS".to_owned(), "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()),
            ("PORTCULLIS_PROVIDER__CLIENT_SECRET".to_owned(), "secret".to_owned()),
        ];
        let config =
            Config::from_sources(&toml, Path::new(name), env).unwrap_or_else(|err| panic!("{name}: {err}\n{toml}"));
        let auth = config.auth.unwrap_or_else(|| panic!("{name}: the login block configures a provider"));
        assert_eq!(auth.provider.issuer, "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE");
    }
}

#[test]
fn demo_and_dev_idp_examples_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/dev-idp.example.toml")).unwrap();
    let settings: portcullis::dev_idp::Settings = toml::from_str(&text).expect("dev-idp example parses");
    settings.validate().expect("dev-idp example is valid");
    assert_eq!(settings.clients.len(), 1);
}
