//! `serve` reloads its configuration on `SIGHUP` and when the file changes, and keeps running
//! on an invalid edit (the real binary, the real file watcher; bounded polls, no fixed sleeps).

#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /` → the configuration generation, or `None` while the server does not answer.
fn generation(port: u16) -> Option<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let body = out.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["oidc_realm"]["config_generation"].as_u64()
}

fn wait_for_generation(port: u16, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let g = generation(port);
        if g == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "generation {g:?}, waited for {want}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn serve_reloads_on_sighup_and_on_file_change_and_survives_a_bad_edit() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = dir.path().join("oidc-realm.yml");
    let config = |timeout: &str| {
        format!("http:\n  bind: 127.0.0.1:{port}\ndata:\n  path: data/test.redb\ntoken:\n  timeout: {timeout}\n")
    };
    std::fs::write(&path, config("20m")).unwrap();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_oidc-realm"))
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_generation(port, 1);
    let pid = _server.0.id().to_string();

    // SIGHUP reloads even when nothing changed.
    let st = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(st.success());
    wait_for_generation(port, 2);

    // An edit (written by rename) is picked up by the watcher.
    let tmp = dir.path().join("oidc-realm.yml.tmp");
    std::fs::write(&tmp, config("10m")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait_for_generation(port, 3);

    // An invalid edit is refused; the server keeps serving generation 3, also after SIGHUP.
    std::fs::write(&path, config("2h")).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(generation(port), Some(3));
    // Fixed: the next edit applies.
    std::fs::write(&path, config("5m")).unwrap();
    wait_for_generation(port, 4);
}
