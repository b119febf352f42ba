//! Crash safety of the real binary: issue tokens from several concurrent clients, SIGKILL the
//! server mid-stream, restart it on the same file: every token whose response arrived still
//! authenticates. What happens on the way, as docs/operations.md describes it: the killed
//! server left the file not closed cleanly, so redb *repairs* it when it opens (observed with
//! `Database::builder().set_repair_callback` on a copy, and in the restarted server's log);
//! a graceful stop (SIGTERM) closes it cleanly, and the next open runs no repair.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let hash = bcrypt::hash("crash-password", 4).unwrap();
    let yaml = format!(
        "http:\n  bind: 127.0.0.1:{port}\ndata:\n  path: data/tokens.redb\nusers:\n  facilitator:\n    password_hash: \"{hash}\"\n    privileges: [manage_token]\n"
    );
    let path = dir.join("oidc-realm.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn start(config: &Path) -> Child {
    start_logging_to(config, None)
}

/// Start the server; its log (stdout) goes to `log` when given.
fn start_logging_to(config: &Path, log: Option<&Path>) -> Child {
    let stdout = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::null(),
    };
    Command::new(env!("CARGO_BIN_EXE_oidc-realm"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("start oidc-realm")
}

/// Open a redb file in-process and report the progress values of every repair callback
/// (empty: no repair ran), then close it cleanly.
fn repair_progress(path: &Path) -> Vec<f64> {
    let seen: Arc<Mutex<Vec<f64>>> = Arc::default();
    let record = seen.clone();
    let db = redb::Database::builder()
        .set_repair_callback(move |session| record.lock().unwrap().push(session.progress()))
        .open(path)
        .expect("the store file opens");
    drop(db);
    let seen = seen.lock().unwrap().clone();
    seen
}

/// Stop the server gracefully (SIGTERM) and wait for it to exit.
fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "oidc-realm exited with {status} on SIGTERM"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "oidc-realm did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/_health")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("oidc-realm exited during start: {status}");
        }
        assert!(Instant::now() < deadline, "oidc-realm did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_whose_response_arrived_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let base = format!("http://127.0.0.1:{port}");
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let mut child = start(&config);
    wait_ready(&client, &base, &mut child).await;

    let issued: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (client, base, issued, stop) =
            (client.clone(), base.clone(), issued.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let resp = client
                    .post(format!("{base}/_security/oauth2/token"))
                    .basic_auth("facilitator", Some("crash-password"))
                    .json(&serde_json::json!({"grant_type": "client_credentials"}))
                    .send()
                    .await;
                let Ok(resp) = resp else { break };
                if resp.status() != 200 {
                    break;
                }
                let Ok(body) = resp.json::<serde_json::Value>().await else {
                    break;
                };
                if let Some(t) = body["access_token"].as_str() {
                    issued.lock().unwrap().push(t.to_string());
                }
            }
        }));
    }
    // Let the clients get well into their stream, then kill without warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    while issued.lock().unwrap().len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let issued = issued.lock().unwrap().clone();
    assert!(
        issued.len() >= 300,
        "only {} tokens issued before the kill",
        issued.len()
    );

    // The killed server did not close the file: opening it runs redb's repair. Observed on a
    // copy, so that the server below opens the file exactly as the kill left it.
    let file = dir.path().join("data/tokens.redb");
    let copy = dir.path().join("probe.redb");
    std::fs::copy(&file, &copy).unwrap();
    let progress = repair_progress(&copy);
    assert!(
        !progress.is_empty(),
        "redb opened a SIGKILLed store file without repairing it"
    );
    assert_eq!(progress[0], 0.0, "{progress:?}");
    // Once repaired (and closed cleanly), the copy opens without repair.
    assert_eq!(repair_progress(&copy), Vec::<f64>::new());

    // Restart on the same file: it repairs (and says so in its log) and every token works.
    let log = dir.path().join("restart.log");
    let mut child = start_logging_to(&config, Some(&log));
    wait_ready(&client, &base, &mut child).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("store file was not closed cleanly; recovering"),
        "{logged}"
    );
    let mut failed = 0;
    for t in &issued {
        let r = client
            .get(format!("{base}/_security/_authenticate"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            failed += 1;
        }
    }
    assert_eq!(
        failed,
        0,
        "{failed} of {} acknowledged tokens were lost",
        issued.len()
    );

    // A graceful stop closes the file cleanly: the next open runs no repair.
    drop(client);
    terminate(&mut child);
    assert_eq!(
        repair_progress(&file),
        Vec::<f64>::new(),
        "the store file needed repair after a graceful stop"
    );
}
