//! The binary's commands: `check-config`, `hash-password`, and `serve` refusing bad config.

use std::io::Write;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oidc-realm"))
}

#[test]
fn check_config_accepts_the_example_with_a_summary() {
    let out = bin()
        .args(["check-config", "--config", "config/oidc-realm.yml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("ok: 1 realm (oidc1), 2 users (admin, facilitator)"),
        "{stdout}"
    );
    // Warnings are printed, one per line, and never a secret.
    assert!(stdout
        .lines()
        .any(|l| l.starts_with("warning: realms.oidc1.op.")));
    let secret = std::fs::read_to_string("config/secrets/oidc1_client_secret").unwrap();
    assert!(!stdout.contains(secret.trim()));
}

#[test]
fn check_config_prints_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(
        &path,
        "http:\n  bindd: 1.2.3.4\ntoken:\n  timeout: 2h\nrealms:\n  oidc1:\n    order: 1\n    rp.client_id: x\n    rp.client_secret: s\n    rp.redirect_uri: /callback\n    rp.response_type: code\n    op.issuer: https://op\n    op.authorization_endpoint: https://op/a\n    op.token_endpoint: https://op/t\n    op.jwkset_path: https://op/jwks\n    claims.principal: sub\n",
    )
    .unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("warning:"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("http.bindd:") && l.contains("did you mean")),
        "{stdout}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("token.timeout:")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("realms.oidc1.rp.redirect_uri:") && l.contains("/callback")),
        "{stdout}"
    );
    assert!(lines.len() >= 3);
    assert!(!stdout.contains(": s\n"));
}

#[test]
fn serve_refuses_to_start_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, "http:\n  bind: not-an-address\n").unwrap();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http.bind"));
}

#[test]
fn hash_password_prints_a_verifiable_argon2id_hash() {
    let mut child = bin()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let parsed = PasswordHash::new(hash).unwrap();
    assert!(argon2::Argon2::default()
        .verify_password(b"correct horse", &parsed)
        .is_ok());
}

#[test]
fn hash_password_refuses_an_empty_password() {
    let mut child = bin()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn serve_writes_json_log_lines_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.path().join("c.yml");
    std::fs::write(
        &path,
        format!("http:\n  bind: 127.0.0.1:{port}\ndata:\n  path: d.redb\nlog:\n  format: json\n"),
    )
    .unwrap();
    let mut child = bin()
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until it listens, then stop it and read what it logged.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(lines
        .iter()
        .any(|l| l.contains("listening on http://127.0.0.1")));
}
