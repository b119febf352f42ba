//! `http.tls`: the real binary serves HTTPS only, with rustls.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn with_tls_configured_only_https_is_served() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    std::fs::write(dir.path().join("server.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), ck.key_pair.serialize_pem()).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("oidc-realm.yml");
    std::fs::write(
        &config,
        format!(
            "http:\n  bind: 127.0.0.1:{port}\n  tls:\n    certificate: server.crt\n    key: server.key\ndata:\n  path: data/x.redb\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oidc-realm"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        match https
            .get(format!("https://localhost:{port}/_health"))
            .send()
            .await
        {
            Ok(r) => break r.text().await.unwrap(),
            Err(e) => {
                assert!(Instant::now() < deadline, "no HTTPS answer: {e}");
                assert!(child.try_wait().unwrap().is_none(), "server exited");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(body, r#"{"status":"ok"}"#);
    // Plain HTTP on the same port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://127.0.0.1:{port}/_health"))
        .send()
        .await;
    assert!(r.is_err() || !r.unwrap().status().is_success());
    child.kill().unwrap();
    child.wait().unwrap();
}
