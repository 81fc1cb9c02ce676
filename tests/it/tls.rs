//! Upstream TLS with SNI, end to end: a real TLS origin (`openssl s_server`) with a certificate
//! for `localhost` signed by a CA made here, trusted through `SSL_CERT_FILE` (which Pingora's
//! rustls connector reads along with the platform's trust store).
#![cfg(feature = "tls")]

use crate::support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::test_ca::make_certs;
use support::{client, free_port, server_section, wait_until, BinaryProxy};

struct TlsOrigin(Child);

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server -WWW` serves the files of `dir` over HTTPS.
fn tls_origin(dir: &Path, port: u16) -> TlsOrigin {
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "server.pem",
            "-key",
            "server.key",
            "-WWW",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    wait_until("the TLS origin to listen", Duration::from_secs(10), || {
        support::accepts(([127, 0, 0, 1], port).into())
    });
    TlsOrigin(child)
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_tls_verifies_the_certificate_against_the_sni() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), "outrider test CA", "DNS:localhost");
    std::fs::write(dir.path().join("hello.txt"), "hello over tls\n").unwrap();
    let port = free_port();
    let _origin = tls_origin(dir.path(), port);

    // The built binary, so that the trust store it reads (`SSL_CERT_FILE`, as an operator
    // would set it) is its own: setting it in this shared test process would race the other
    // tests' threads.
    let ca = dir.path().join("ca.pem");
    let proxy = BinaryProxy::spawn_with(
        |data, admin| {
            format!(
                "{}[upstreams.secure]\nendpoints = [\"127.0.0.1:{port}\"]\ntls = true\nsni = \"localhost\"\n\n\
                 [upstreams.wrong_name]\nendpoints = [\"127.0.0.1:{port}\"]\ntls = true\nsni = \"not-localhost.example\"\n\n\
                 [[routes]]\nname = \"good\"\nupstream = \"secure\"\nmatch = {{ path_prefix = \"/hello\" }}\n\n\
                 [[routes]]\nname = \"bad\"\nupstream = \"wrong_name\"\nmatch = {{ path_prefix = \"/bad\" }}\n",
                server_section(data, admin)
            )
        },
        |command| {
            command.env("SSL_CERT_FILE", &ca);
        },
    );
    let url = |path: &str| format!("http://{}{path}", proxy.addr);

    let resp = client().get(url("/hello.txt")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "hello over tls\n");

    // The certificate is for localhost: a different SNI must fail verification, not pass.
    let resp = client().get(url("/bad/hello.txt")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.unwrap();
    assert!(body.contains("wrong_name"), "{body}");
}
