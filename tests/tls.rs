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

// ---------------------------------------------------------------------------------------------
// The OIDC client's `ssl.supported_protocols` and `ssl.cipher_suites` (the positive cases are
// in src/oidc/client/tests.rs, `protocol_and_cipher_settings_are_applied`): a client that
// offers only what a server excludes must fail the handshake, and on a server that accepts
// everything the client's restriction is what gets negotiated.

mod op_client_tls {
    use oidc_realm::oidc::client::OpClient;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{CipherSuite, ProtocolVersion};
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::path::Path;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Duration;

    /// What the server saw of one connection: the negotiated protocol and suite, or the
    /// handshake error.
    type Seen = Result<(ProtocolVersion, CipherSuite), String>;

    /// An HTTPS server on a thread answering `{}` to every request, restricted to these
    /// protocol versions and (when not empty) these suites.
    struct Server {
        url: url::Url,
        seen: mpsc::Receiver<Seen>,
    }

    impl Server {
        fn start(
            cert_pem: &str,
            key_pem: &str,
            versions: &[&'static rustls::SupportedProtocolVersion],
            suites: &[CipherSuite],
        ) -> Self {
            let mut provider = rustls::crypto::aws_lc_rs::default_provider();
            if !suites.is_empty() {
                provider
                    .cipher_suites
                    .retain(|s| suites.contains(&s.suite()));
                assert_eq!(provider.cipher_suites.len(), suites.len());
            }
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
            let config = Arc::new(
                rustls::ServerConfig::builder_with_provider(Arc::new(provider))
                    .with_protocol_versions(versions)
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(certs, key)
                    .unwrap(),
            );
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let (tx, seen) = mpsc::channel();
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    let Ok(tcp) = tcp else { return };
                    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let outcome = loop {
                        match tls.read(&mut chunk) {
                            Ok(0) => break Err("closed before a request".to_string()),
                            Ok(n) => {
                                buf.extend_from_slice(&chunk[..n]);
                                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                                    break Ok(());
                                }
                            }
                            Err(e) => break Err(e.to_string()),
                        }
                    };
                    let report = match outcome {
                        Ok(()) => {
                            let _ = tls.write_all(
                                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                            );
                            let _ = tls.flush();
                            Ok((
                                tls.conn.protocol_version().unwrap(),
                                tls.conn.negotiated_cipher_suite().unwrap().suite(),
                            ))
                        }
                        Err(e) => Err(e),
                    };
                    if tx.send(report).is_err() {
                        return;
                    }
                }
            });
            Self {
                url: url::Url::parse(&format!("https://localhost:{port}/jwks")).unwrap(),
                seen,
            }
        }

        fn next_seen(&self) -> Seen {
            self.seen
                .recv_timeout(Duration::from_secs(20))
                .expect("the server saw no connection")
        }
    }

    /// An OIDC client for a realm with these `ssl.*` settings, trusting `ca`.
    fn client(dir: &Path, ca: &Path, protocols: &[&str], suites: &[&str]) -> OpClient {
        let list = |v: &[&str]| format!("[{}]", v.join(", "));
        let mut extra = String::new();
        if !protocols.is_empty() {
            extra.push_str(&format!(
                "    ssl.supported_protocols: {}\n",
                list(protocols)
            ));
        }
        if !suites.is_empty() {
            extra.push_str(&format!("    ssl.cipher_suites: {}\n", list(suites)));
        }
        let yaml = format!(
            "realms:\n  oidc1:\n    order: 0\n    rp.client_id: rp\n    rp.client_secret: 'client-secret'\n    rp.redirect_uri: 'https://kibana.example.org/api/security/oidc/callback'\n    rp.response_type: code\n    op.issuer: 'https://op.example.org'\n    op.authorization_endpoint: 'https://op.example.org/authorize'\n    op.token_endpoint: 'https://op.example.org/token'\n    op.jwkset_path: 'https://op.example.org/jwks'\n    claims.principal: sub\n    ssl.certificate_authorities: ['{}']\n{extra}",
            ca.display()
        );
        let loaded = oidc_realm::config::load_str(&yaml, dir)
            .unwrap_or_else(|e| panic!("realm does not load:\n{e}\n---\n{yaml}"));
        let realm = loaded.settings.realms.into_iter().next().unwrap();
        OpClient::new(&realm).unwrap()
    }

    #[actix_web::test]
    async fn a_client_offering_only_what_the_server_excludes_fails_the_handshake() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        // An ECDSA P-256 certificate (rcgen's default key), trusted as its own CA.
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ck.cert.pem()).unwrap();
        let (cert, key) = (ck.cert.pem(), ck.key_pair.serialize_pem());
        use rustls::version::{TLS12, TLS13};
        use CipherSuite::{
            TLS13_AES_128_GCM_SHA256 as AES128_13, TLS13_AES_256_GCM_SHA384 as AES256_13,
            TLS13_CHACHA20_POLY1305_SHA256 as CHACHA_13,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 as AES128_12,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 as AES256_12,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 as CHACHA_12,
        };
        let only13 = Server::start(&cert, &key, &[&TLS13], &[AES128_13]);
        let only12 = Server::start(&cert, &key, &[&TLS12], &[AES128_12]);
        let any = Server::start(&cert, &key, &[&TLS13, &TLS12], &[]);

        type Case<'a> = (
            &'a str,
            &'a Server,
            &'a [&'a str],
            &'a [&'a str],
            Option<Seen>,
        );
        let cases: Vec<Case> = vec![
            // Refused: the protocol the client offers is excluded by the server...
            (
                "TLS 1.2 only vs a TLS 1.3 server",
                &only13,
                &["TLSv1.2"],
                &[],
                None,
            ),
            (
                "TLS 1.3 only vs a TLS 1.2 server",
                &only12,
                &["TLSv1.3"],
                &[],
                None,
            ),
            // ...or every suite it offers is.
            (
                "a TLS 1.3 suite the server excludes",
                &only13,
                &[],
                &["TLS_CHACHA20_POLY1305_SHA256"],
                None,
            ),
            (
                "a TLS 1.2 suite the server excludes",
                &only12,
                &[],
                &["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"],
                None,
            ),
            // Controls: the same servers accept a client whose offer includes theirs.
            (
                "defaults vs a TLS 1.3 server",
                &only13,
                &[],
                &[],
                Some(Ok((ProtocolVersion::TLSv1_3, AES128_13))),
            ),
            (
                "defaults vs a TLS 1.2 server",
                &only12,
                &[],
                &[],
                Some(Ok((ProtocolVersion::TLSv1_2, AES128_12))),
            ),
            (
                "the server's own TLS 1.2 suite",
                &only12,
                &["TLSv1.2"],
                &["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
                Some(Ok((ProtocolVersion::TLSv1_2, AES128_12))),
            ),
            // On a server that takes anything, the client's restriction is what is negotiated
            // (without it, TLS 1.3 with AES-256-GCM, the first of rustls's preferences, would be).
            (
                "TLS 1.2 only vs an open server",
                &any,
                &["TLSv1.2"],
                &[],
                Some(Ok((ProtocolVersion::TLSv1_2, AES256_12))),
            ),
            (
                "ChaCha20 (1.3) only vs an open server",
                &any,
                &[],
                &["TLS_CHACHA20_POLY1305_SHA256"],
                Some(Ok((ProtocolVersion::TLSv1_3, CHACHA_13))),
            ),
            (
                "ChaCha20 (1.2) only vs an open server",
                &any,
                &["TLSv1.2"],
                &["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"],
                Some(Ok((ProtocolVersion::TLSv1_2, CHACHA_12))),
            ),
            (
                "defaults vs an open server",
                &any,
                &[],
                &[],
                Some(Ok((ProtocolVersion::TLSv1_3, AES256_13))),
            ),
        ];
        for (what, server, protocols, suites, expected) in cases {
            let c = client(dir.path(), &ca, protocols, suites);
            let got = c.get_jwks(&server.url).await;
            let seen = server.next_seen();
            match expected {
                None => {
                    assert!(got.is_err(), "{what}: the request succeeded");
                    assert!(
                        seen.is_err(),
                        "{what}: the server completed a handshake: {seen:?}"
                    );
                }
                Some(expected) => {
                    assert_eq!(got.as_deref().ok(), Some(&b"{}"[..]), "{what}: {got:?}");
                    assert_eq!(seen, expected, "{what}");
                }
            }
        }
    }
}
