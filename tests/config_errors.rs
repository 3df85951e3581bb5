//! Configuration mistakes are reported all at once, each naming its key (and the
//! environment variable, when one set it); the example config documents every key.

use portcullis::Config;
use portcullis::config::{ConfigError, Problem, RawConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::from_sources(toml, Path::new("test.toml"), env)
}

fn problems(toml: &str, env: &[(&str, &str)]) -> Vec<Problem> {
    match load(toml, env) {
        Err(ConfigError::Invalid(problems)) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

fn keys(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

const MINIMAL: &str = "[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:3000\"\n";

#[test]
fn every_bad_value_is_reported_with_its_key_and_value() {
    let found = problems(
        r#"
[server]
listen = "nope"
shutdown_timeout = "5 parsecs"
[upstream]
connect_timeout = "0s"
[log]
format = "xml"
level = "info,[[["
[[route]]
prefix = "api"
upstream = "ftp://files.example"
[[route]]
prefix = "/"
upstream = "https://app.example"
ca_file = "/nonexistent/ca.pem"
[[route]]
prefix = "/"
upstream = "not a url"
"#,
        &[],
    );
    assert_eq!(
        keys(&found),
        [
            "server.listen",
            "server.shutdown_timeout",
            "upstream.connect_timeout",
            "log.level",
            "log.format",
            "route[0].prefix",
            "route[0].upstream",
            "route[1].ca_file",
            "route[2].upstream",
            "route[2].prefix",
        ]
    );
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(text[0].contains("\"nope\""), "{}", text[0]);
    assert!(text[1].contains("\"5 parsecs\""), "{}", text[1]);
    assert!(text[4].contains("\"xml\""), "{}", text[4]);
    assert!(text[7].contains("/nonexistent/ca.pem: cannot be read"), "{}", text[7]);
    assert!(text[9].contains("already the prefix of route[1]"), "{}", text[9]);
}

#[test]
fn unknown_keys_are_errors_and_all_are_listed() {
    let found = problems(
        r#"
[server]
listne = "0.0.0.0:8080"
[sever]
listen = "x"
[[route]]
prefix = "/"
upstream = "http://127.0.0.1:3000"
upstrem = "http://127.0.0.1:3001"
"#,
        &[],
    );
    let mut found = keys(&found);
    found.sort();
    assert_eq!(found, ["route[0].upstrem", "server.listne", "sever"]);
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    let found = problems(&format!("[server]\nlisten = 8080\n{MINIMAL}"), &[]);
    assert_eq!(keys(&found), ["server.listen"]);
    assert!(found[0].message.contains("expected a string"), "{}", found[0]);
}

#[test]
fn websocket_idle_timeout_is_a_duration_longer_than_zero() {
    for value in ["0s", "forever"] {
        let found = problems(&format!("[upstream]\nwebsocket_idle_timeout = {value:?}\n{MINIMAL}"), &[]);
        assert_eq!(keys(&found), ["upstream.websocket_idle_timeout"], "{value}");
        assert!(found[0].message.contains(&format!("{value:?}")), "{}", found[0]);
    }
    let config = load(MINIMAL, &[("PORTCULLIS_UPSTREAM__WEBSOCKET_IDLE_TIMEOUT", "90s")]).expect("valid");
    assert_eq!(config.upstream.websocket_idle_timeout.as_secs(), 90);
    assert_eq!(load(MINIMAL, &[]).unwrap().upstream.websocket_idle_timeout.as_secs(), 300, "default: 5 minutes");
}

#[test]
fn missing_routes_and_syntax_errors_are_explained() {
    assert_eq!(keys(&problems("", &[])), ["route"]);
    let err = load("[server\nlisten = 1", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }));
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn environment_overrides_file_values_with_types_from_the_defaults() {
    let config = load(
        MINIMAL,
        &[
            ("PORTCULLIS_SERVER__LISTEN", "127.0.0.1:7000"),
            ("PORTCULLIS_SERVER__TRUST_FORWARDED_HEADERS", "true"),
            ("PORTCULLIS_UPSTREAM__POOL_MAX_IDLE_PER_HOST", "7"),
            ("PORTCULLIS_UPSTREAM__RESPONSE_TIMEOUT", "2m"),
            ("PORTCULLIS_ROUTE__0__UPSTREAM", "http://10.0.0.1:3000/base/"),
            ("PORTCULLIS_ROUTE__1__PREFIX", "/api/"),
            ("PORTCULLIS_ROUTE__1__UPSTREAM", "http://10.0.0.2:4000"),
            ("PORTCULLIS_ROUTE__1__STRIP_PREFIX", "TRUE"),
            // Not overrides: the CLI's own variable and Kubernetes service links.
            ("PORTCULLIS_CONFIG", "/etc/portcullis.toml"),
            ("PORTCULLIS_SERVICE_HOST", "10.96.0.10"),
            ("PORTCULLIS_PORT_80_TCP_ADDR", "10.96.0.10"),
            ("OTHER__THING", "x"),
        ],
    )
    .expect("valid");
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:7000");
    assert!(config.server.trust_forwarded_headers);
    assert_eq!(config.upstream.pool_max_idle_per_host, 7);
    assert_eq!(config.upstream.response_timeout.as_secs(), 120);
    assert_eq!(config.routes[0].upstream.as_ref().unwrap().authority, "10.0.0.1:3000");
    assert_eq!(config.routes[0].upstream.as_ref().unwrap().base_path, "/base");
    assert_eq!(config.routes[1].prefix, "/api/");
    assert!(config.routes[1].strip_prefix);
}

#[test]
fn environment_mistakes_name_the_variable() {
    let found = problems(
        MINIMAL,
        &[
            ("PORTCULLIS_SERVER__TRUST_FORWARDED_HEADERS", "yes"),
            ("PORTCULLIS_SERVER__LISTNE", "127.0.0.1:1"),
            ("PORTCULLIS_UPSTREAM__IDLE_TIMEOUT", "soon"),
            ("PORTCULLIS_ROUTE__5__PREFIX", "/x"),
            ("PORTCULLIS_SERVR__LISTEN", "127.0.0.1:1"),
            ("PORTCULLIS_SERVER__WORKERS", "100000"),
        ],
    );
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    let has = |needle: &str| text.iter().any(|t| t.contains(needle));
    assert!(has("route[5].prefix (set by PORTCULLIS_ROUTE__5__PREFIX)"), "{text:#?}");
    assert!(
        has(
            "server.trust_forwarded_headers (set by PORTCULLIS_SERVER__TRUST_FORWARDED_HEADERS): expected `true` or `false`"
        ),
        "{text:#?}"
    );
    assert!(has("server.listne (set by PORTCULLIS_SERVER__LISTNE): unknown key"), "{text:#?}");
    assert!(
        has("upstream.idle_timeout (set by PORTCULLIS_UPSTREAM__IDLE_TIMEOUT): \"soon\" is not a duration"),
        "{text:#?}"
    );
    assert!(has("servr (set by PORTCULLIS_SERVR__LISTEN): unknown key"), "{text:#?}");
    assert!(has("server.workers (set by PORTCULLIS_SERVER__WORKERS): 100000 is more than 256"), "{text:#?}");
}

/// Flattens a TOML table into `section.key` → value (arrays of tables by index).
fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&path, value, out);
            }
        }
        toml::Value::Array(items) if items.iter().all(toml::Value::is_table) && !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

#[test]
fn example_config_lists_every_key_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/portcullis.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    Config::from_sources(&text, &path, std::iter::empty()).expect("the example config is valid");

    let mut example = BTreeMap::new();
    flatten("", &toml::from_str::<toml::Value>(&text).unwrap(), &mut example);
    let defaults = RawConfig { routes: vec![Default::default()], ..Default::default() };
    let mut expected = BTreeMap::new();
    flatten("", &toml::Value::try_from(defaults).unwrap(), &mut expected);

    for (key, default) in &expected {
        let shown = example.get(key).unwrap_or_else(|| panic!("the example config does not list `{key}`"));
        if !key.starts_with("route[") {
            assert_eq!(shown, default, "the example config shows `{key}` with a value other than its default");
        }
    }
    for key in example.keys() {
        let generic = key.replacen(|c: char| c.is_ascii_digit(), "0", 1);
        assert!(expected.contains_key(&generic), "the example config lists `{key}`, which is not a key");
    }
}

#[test]
fn check_command_exits_2_and_names_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"nope\"\n[log]\nformat = \"xml\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&bad)
        .env("PORTCULLIS_UPSTREAM__IDLE_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "server.listen: \"nope\"",
        "log.format: \"xml\"",
        "upstream.idle_timeout (set by PORTCULLIS_UPSTREAM__IDLE_TIMEOUT)",
        "route: no [[route]] is defined",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }

    let good = dir.path().join("good.toml");
    std::fs::write(&good, MINIMAL).unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_portcullis")).args(["check", "--config"]).arg(&good).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));

    let missing = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config", "/nonexistent/portcullis.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read config file /nonexistent/portcullis.toml"));

    let version = Command::new(env!("CARGO_BIN_EXE_portcullis")).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("portcullis {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn plain_http_is_accepted_only_for_localhost_or_with_the_dev_switch() {
    let login = |public_url: &str, insecure: bool| {
        format!(
            "[server]\npublic_url = \"{public_url}\"\n[provider]\nkind = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"c\"\n\
             [session]\ncookie_keys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\ninsecure_dev_cookies = {insecure}\n{MINIMAL}"
        )
    };
    for origin in ["https://app.example.com", "http://localhost:8080", "http://127.0.0.1:8080"] {
        assert!(load(&login(origin, false), &[]).is_ok(), "{origin}");
    }
    let refused = problems(&login("http://app.example.com", false), &[]);
    assert_eq!(keys(&refused), ["server.public_url"]);
    assert!(refused[0].message.contains("plain http"), "{}", refused[0]);
    assert!(load(&login("http://app.example.com", true), &[]).is_ok(), "allowed with the dev switch");
}

#[test]
fn identity_headers_cannot_shadow_http_or_each_other_and_login_settings_need_a_provider() {
    let with_identity = |lines: &str| {
        format!(
            "[server]\npublic_url = \"https://app.example.com\"\n[provider]\nkind = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"c\"\n\
             [session]\ncookie_keys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n[identity]\n{lines}\n{MINIMAL}"
        )
    };
    let found = problems(&with_identity("user_id_header = \"Authorization\"\nemail_header = \"x-user-name\""), &[]);
    assert_eq!(keys(&found), ["identity.user_id_header", "identity.email_header"]);
    assert!(found[1].message.contains("already identity.username_header"), "{}", found[1]);

    let found = problems(&format!("[bearer]\nenabled = true\n[session]\ncookie_keys = [\"x\"]\n{MINIMAL}"), &[]);
    assert_eq!(keys(&found), ["bearer.enabled", "session.cookie_keys"]);
}

#[test]
fn cognito_issuer_picks_the_issuer_form_and_issuer_endpoint_only_moves_the_fetches() {
    let cognito = |lines: &str| {
        format!(
            "[server]\npublic_url = \"https://app.example.com\"\n[provider]\nkind = \"cognito\"\nregion = \"eu-west-1\"\n\
             user_pool_id = \"eu-west-1_AbCdEf123\"\ndomain = \"https://myapp.auth.eu-west-1.amazoncognito.com\"\n\
             client_id = \"c\"\n{lines}\n[session]\ncookie_keys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n{MINIMAL}"
        )
    };
    let provider = |lines: &str| load(&cognito(lines), &[]).unwrap().auth.unwrap().provider;
    assert_eq!(provider("").issuer, "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123");
    let updated = provider("cognito_issuer = \"updated\"");
    assert_eq!(updated.issuer, "https://issuer-cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123");
    assert_eq!(updated.issuer_endpoint, None);
    let moved = provider("cognito_issuer = \"updated\"\nissuer_endpoint = \"http://127.0.0.1:9000\"");
    assert_eq!(moved.issuer, updated.issuer, "the expected iss does not move with the endpoint");
    assert_eq!(moved.issuer_endpoint.as_deref(), Some("http://127.0.0.1:9000"));

    let found = problems(&cognito("cognito_issuer = \"UPDATED\""), &[]);
    assert_eq!(keys(&found), ["provider.cognito_issuer"]);
    assert!(found[0].message.contains("\"original\" or \"updated\""), "{}", found[0]);
    let found = problems(&cognito("cognito_issuer = \"updated\"\nissuer = \"https://idp.example/pool\""), &[]);
    assert_eq!(keys(&found), ["provider.cognito_issuer"]);
    let found = problems(&cognito("issuer_endpoint = \"http://127.0.0.1:9000/pool\""), &[]);
    assert_eq!(keys(&found), ["provider.issuer_endpoint"]);
    let found = problems(
        &format!(
            "[server]\npublic_url = \"https://app.example.com\"\n[provider]\nkind = \"oidc\"\nissuer = \"https://idp.example\"\n\
             client_id = \"c\"\nissuer_endpoint = \"http://127.0.0.1:9000\"\n\
             [session]\ncookie_keys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n{MINIMAL}"
        ),
        &[],
    );
    assert_eq!(keys(&found), ["provider.issuer_endpoint"]);
}

#[test]
fn redis_settings_are_checked_and_the_url_is_never_quoted_back() {
    let login = |lines: &str| {
        format!(
            "[server]\npublic_url = \"https://app.example.com\"\n[provider]\nkind = \"oidc\"\nissuer = \"https://idp.example\"\n\
             client_id = \"c\"\n[session]\ncookie_keys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n{lines}\n{MINIMAL}"
        )
    };
    let url = "[redis]\nurl = \"redis://:s3cret@127.0.0.1:6379/0\"";
    let config = load(&login(&format!("store = \"redis\"\n{url}")), &[]).expect("a valid Redis store");
    let redis = config.auth.as_ref().unwrap().redis.as_ref().unwrap();
    assert_eq!(
        (redis.key_prefix.as_str(), redis.command_timeout.as_millis(), redis.connections),
        ("portcullis:", 250, 2)
    );
    assert!(!format!("{config:?}").contains("s3cret"), "the URL's password is a secret");

    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 6] = [
        ("store = \"redis\"", &[], &["session.store"]),
        ("store = \"memcached\"", &[], &["session.store"]),
        ("[redis]\nurl = \"http://:s3cret@127.0.0.1/\"", &[], &["redis.url"]),
        ("[redis]\nurl = \"s3cret\"", &[], &["redis.url"]),
        (url, &[("PORTCULLIS_REDIS__COMMAND_TIMEOUT", "30s")], &["redis.command_timeout"]),
        (
            "[redis]\nurl = \"rediss://127.0.0.1\"\nconnections = 0\nkey_prefix = \"\"",
            &[],
            &["redis.connections", "redis.key_prefix"],
        ),
    ];
    for (lines, env, expected) in cases {
        let found = problems(&login(lines), env);
        assert_eq!(keys(&found), expected, "{lines}");
        for problem in &found {
            assert!(!problem.to_string().contains("s3cret"), "{problem}");
        }
    }
    let env_url = load(&login("store = \"redis\""), &[("PORTCULLIS_REDIS__URL", "redis://127.0.0.1:6379/1")]);
    assert!(env_url.is_ok(), "the URL from the environment: {env_url:?}");
}

#[test]
fn forward_auth_trusts_networks_and_lets_routes_leave_out_the_upstream() {
    let login = "[server]\npublic_url = \"https://app.example.com\"\n[provider]\nkind = \"oidc\"\n\
                 issuer = \"https://idp.example\"\nclient_id = \"c\"\n\
                 [session]\ncookie_keys = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n";
    let config = load(&format!("{login}[forward_auth]\nenabled = true\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1\"]\n[[route]]\nprefix = \"/admin/\"\nallowed_groups = [\"admin\"]\n"), &[]).unwrap();
    let trusted: Vec<String> = config.forward_auth.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(trusted, ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]);
    assert!(config.routes[0].upstream.is_none(), "a route for /auth/verify only");
    let alone = format!("{login}[forward_auth]\nenabled = true\n");
    assert!(load(&alone, &[]).is_ok(), "forward-auth alone needs no route");
    let found = problems(&format!("{login}[[route]]\nprefix = \"/admin/\"\n"), &[]);
    assert_eq!(keys(&found), ["route[0].upstream"], "a route without an upstream needs forward-auth");
    assert!(found[0].message.contains("forward_auth.enabled"), "{}", found[0]);
    let found = problems("[forward_auth]\nenabled = true\n", &[]);
    assert_eq!(keys(&found), ["forward_auth.enabled"]);
    let env =
        [("PORTCULLIS_FORWARD_AUTH__ENABLED", "true"), ("PORTCULLIS_FORWARD_AUTH__TRUSTED_PROXIES", "10.1.0.0/16,::1")];
    let from_env = load(login, &env).unwrap();
    assert_eq!(from_env.forward_auth.trusted_proxies.len(), 2);

    let found = problems(&format!("{alone}trusted_proxies = [\"10.0.0.0/33\", \"proxy.local\"]\n"), &[]);
    assert_eq!(keys(&found), ["forward_auth.trusted_proxies", "forward_auth.trusted_proxies"]);
    assert!(found[1].message.contains("\"proxy.local\""), "{}", found[1]);
    let found = problems("[[route]]\nprefix = \"/\"\n", &[]);
    assert_eq!(keys(&found), ["route[0].upstream"]);
}
