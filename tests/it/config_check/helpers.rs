//! Running `outrider check` on a file or a text, and asserting what it printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) const UPSTREAM: &str = "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n";

pub(crate) fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The binary with a clean environment for what it reads.
pub(crate) fn outrider() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outrider"));
    cmd.env_remove("OUTRIDER_CONFIG").env_remove("RUST_LOG");
    cmd
}

pub(crate) struct Run {
    /// The path as the binary prints it.
    pub(crate) file: String,
    out: Output,
    // Keeps the temp file alive until the assertions are done.
    _tmp: Option<tempfile::NamedTempFile>,
}

impl Run {
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
}

pub(crate) fn write_temp(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .prefix("outrider-check-")
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    f.write_all(text.as_bytes()).expect("write temp file");
    f.flush().unwrap();
    f
}

/// `outrider check --config <tempfile holding text>`.
pub(crate) fn check_text(text: &str) -> Run {
    let tmp = write_temp(text);
    let file = tmp.path().display().to_string();
    let out = outrider()
        .args(["check", "--config", &file])
        .output()
        .expect("run outrider");
    Run {
        file,
        out,
        _tmp: Some(tmp),
    }
}

pub(crate) fn check_path(path: &Path) -> Run {
    let file = path.display().to_string();
    let out = outrider()
        .args(["check", "--config", &file])
        .output()
        .expect("run outrider");
    Run {
        file,
        out,
        _tmp: None,
    }
}

/// One expected error: line, column, key path ("" for syntax errors), a fragment of the message.
type Expect<'a> = (usize, usize, &'a str, &'a str);

/// Asserts exit 1, nothing on stdout, and exactly these error lines (in this order) on stderr,
/// followed by the `N error(s) found` line.
pub(crate) fn assert_errors(run: &Run, expected: &[Expect<'_>]) {
    let stderr = run.stderr();
    assert_eq!(run.code(), Some(1), "exit status; stderr:\n{stderr}");
    assert_eq!(run.stdout(), "", "stdout must be empty on error");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len() + 1,
        "expected {} error lines plus the count; got:\n{stderr}",
        expected.len()
    );
    for (got, (line, col, key, fragment)) in lines.iter().zip(expected) {
        let prefix = if key.is_empty() {
            format!("{}:{line}:{col}: ", run.file)
        } else {
            format!("{}:{line}:{col}: {key}: ", run.file)
        };
        assert!(
            got.starts_with(&prefix),
            "expected prefix {prefix:?}\n      got line {got:?}\nfull stderr:\n{stderr}"
        );
        assert!(
            got[prefix.len()..].contains(fragment),
            "expected {fragment:?} in the message of {got:?}"
        );
    }
    let n = expected.len();
    let count = format!("{n} error{} found", if n == 1 { "" } else { "s" });
    assert_eq!(lines.last().copied(), Some(count.as_str()), "{stderr}");
}

pub(crate) fn assert_ok(run: &Run) {
    assert_eq!(
        run.code(),
        Some(0),
        "exit status; stderr:\n{}\nstdout:\n{}",
        run.stderr(),
        run.stdout()
    );
    assert_eq!(run.stderr(), "", "stderr must be empty on success");
    let stdout = run.stdout();
    assert_eq!(
        stdout.lines().next(),
        Some(format!("{}: ok", run.file).as_str()),
        "{stdout}"
    );
}
