//! Helpers the CLI tests share: running the built `secc`, the fixture folder.
#![allow(dead_code, clippy::unwrap_used)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `secc` binary of this build.
pub fn secc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secc"))
        .args(args)
        .output()
        .expect("run secc")
}

/// tests/models of the repository.
pub fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/models")
}

/// A path as a CLI argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// stdout of a run that must succeed.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
