//! deploy/: the systemd unit keeps its hardening and starts the binary with commands it has;
//! `systemd-analyze verify` accepts it (with ExecStart pointing at the binary under test) and
//! `systemd-analyze security` rates it; the container image's entry point is a real command.

use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = "deploy/oidc-realm.service";
const CONTAINERFILE: &str = "deploy/Containerfile";
const INSTALLED_BIN: &str = "/usr/local/bin/oidc-realm";
const CONFIG: &str = "/etc/oidc-realm/oidc-realm.yml";

/// `(section, key, value)` for every assignment of a unit file, in order.
fn parse_unit(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "continuation lines are not parsed here: {line}"
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not an assignment: {line}"));
        out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
    }
    out
}

fn unit() -> Vec<(String, String, String)> {
    parse_unit(&std::fs::read_to_string(UNIT).unwrap())
}

/// The values of `key` in `[Service]`, in order.
fn service(entries: &[(String, String, String)], key: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|(s, k, _)| s == "Service" && k == key)
        .map(|(_, _, v)| v.clone())
        .collect()
}

fn one(entries: &[(String, String, String)], key: &str) -> String {
    let v = service(entries, key);
    assert_eq!(
        v.len(),
        1,
        "[Service] {key}= should be set exactly once: {v:?}"
    );
    v[0].clone()
}

#[test]
fn unit_keeps_its_hardening() {
    let u = unit();
    for (key, value) in [
        ("Type", "exec"),
        ("User", "oidc-realm"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("StateDirectory", "oidc-realm"),
        ("ConfigurationDirectory", "oidc-realm"),
        ("Restart", "on-failure"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert_eq!(one(&u, key), value, "[Service] {key}=");
    }
    assert_eq!(
        service(&u, "SystemCallFilter").first().map(String::as_str),
        Some("@system-service")
    );
    assert!(!one(&u, "LimitNOFILE").is_empty());
    // No sd_notify in the binary (Type=notify would time out every start); if it comes,
    // Type=notify would tell systemd when the server listens.
    assert!(
        !mentions(Path::new("src"), "NOTIFY_SOCKET"),
        "sd_notify support: revisit Type="
    );
}

fn mentions(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            mentions(&p, needle)
        } else {
            std::fs::read_to_string(&p).is_ok_and(|t| t.contains(needle))
        }
    })
}

#[test]
fn unit_runs_commands_the_binary_has() {
    let u = unit();
    let start = one(&u, "ExecStart");
    let pre = one(&u, "ExecStartPre");
    assert_eq!(start, format!("{INSTALLED_BIN} serve --config {CONFIG}"));
    assert_eq!(
        pre,
        format!("{INSTALLED_BIN} check-config --config {CONFIG}")
    );
    // The config lives in ConfigurationDirectory= (the only directory under /etc it reads).
    assert_eq!(
        Path::new(CONFIG).parent().unwrap(),
        Path::new("/etc").join(one(&u, "ConfigurationDirectory"))
    );
    for line in [start, pre] {
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_oidc-realm"))
            .args(&args[..1])
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`oidc-realm {} --help` failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr)
        );
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--config"), "{help}");
    }
}

#[test]
fn containerfile_runs_commands_the_binary_has() {
    let text = std::fs::read_to_string(CONTAINERFILE).unwrap();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line"))
            .to_string()
    };
    assert_eq!(line("ENTRYPOINT "), r#"ENTRYPOINT ["/oidc-realm"]"#);
    assert_eq!(
        line("CMD "),
        format!(r#"CMD ["serve", "--config", "{CONFIG}"]"#)
    );
    assert_eq!(line("EXPOSE "), "EXPOSE 9280");
    assert!(line("USER ").starts_with("USER 65532"));
    assert!(text.contains("cargo build --release --locked"));
}

/// A copy of the unit, named as the original, whose ExecStart/ExecStartPre run the binary
/// under test, in a fresh directory.
fn unit_for_this_binary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(UNIT)
        .unwrap()
        .replace(INSTALLED_BIN, env!("CARGO_BIN_EXE_oidc-realm"));
    let path = dir.path().join("oidc-realm.service");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("skipped: systemd-analyze is not installed");
    }
    found.then_some("systemd-analyze")
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(sa) = systemd_analyze() else { return };
    let (_dir, path) = unit_for_this_binary();
    let out = Command::new(sa)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // Warnings about this unit (an unknown key, a missing binary) are printed but do not
    // always fail the command.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("oidc-realm"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify: {ours:?}");
}

#[test]
fn systemd_analyze_security_rates_the_unit_ok() {
    let Some(sa) = systemd_analyze() else { return };
    let (_dir, path) = unit_for_this_binary();
    // --offline needs systemd 250; --threshold (in tenths: 20 = exposure 2.0) fails the
    // command above it. Today's score is 1.1.
    let out = Command::new(sa)
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !stdout.contains("Overall exposure level") {
        println!("skipped: this systemd-analyze cannot rate a unit file offline: {stderr}");
        return;
    }
    assert!(
        out.status.success(),
        "exposure above 2.0:\n{}",
        stdout.lines().last().unwrap_or_default()
    );
}
