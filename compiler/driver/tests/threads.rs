//! Thread counts: the default is the cores this process may use (here: an affinity mask
//! set with `taskset`), and asking for more is allowed but warned about.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
use std::path::Path;
use std::process::Command;

#[test]
fn default_threads_follow_the_affinity_mask_and_more_are_warned() {
    if Command::new("taskset").arg("--version").output().is_err() {
        eprintln!("skipped: taskset (util-linux) is not installed");
        return;
    }
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/models");
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("se.bin");
    let secc = env!("CARGO_BIN_EXE_secc");
    let o = Command::new(secc)
        .arg(models.join("se_torchvision.onnx"))
        .arg("-o")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let input = format!("x={}", models.join("se_torchvision.in0.npy").display());
    let run = |extra: &[&str]| {
        let o = Command::new("taskset")
            .args(["-c", "0", secc, "run"])
            .arg(&bin)
            .args(["--input", &input, "--bench", "3", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (
            j["threads"].as_u64().unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (threads, err) = run(&[]);
    assert_eq!(threads, 1, "one usable core, default threads");
    assert!(!err.contains("warning"), "{err}");
    let (threads, err) = run(&["--threads", "3"]);
    assert_eq!(threads, 3);
    assert!(
        err.contains("warning: --threads 3 exceeds the 1 core"),
        "{err}"
    );
}
