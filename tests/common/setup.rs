//! Running a setup script of a suite that needs Node.js or Python packages (tests/clients,
//! tests/e2e): once per test process, its output kept for the first caller to print.
//! Included with `#[path]` by the suites that need it, so they need not build all of `common`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The crate root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run `script` (a path relative to the crate root) with bash once per test process (`cell`
/// remembers the outcome): its output, or why it failed.
pub fn run_once(
    cell: &'static OnceLock<Result<String, String>>,
    script: &str,
) -> &'static Result<String, String> {
    cell.get_or_init(|| {
        let script = root().join(script);
        let out = Command::new("bash")
            .arg(&script)
            .current_dir(root())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "{} exited with {}:\n{text}",
                script.display(),
                out.status
            ))
        }
    })
}
