//! Architecture invariants of docs/ARCHITECTURE.md, checked on `cargo metadata`:
//! forbidden dependency edges, including transitive ones for the runtime side.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV prints the host triple")
        .to_string()
}

/// `cargo metadata` for the host platform only: without the filter, cargo resolves every
/// platform's crates (Windows-only ones too), which an offline cache filled by a Linux
/// build does not hold.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host_triple()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// name -> names of its normal (non-dev, non-build) dependencies
fn graph(m: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let names: BTreeMap<String, String> = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut g = BTreeMap::new();
    for n in m["resolve"]["nodes"].as_array().unwrap() {
        let name = names[n["id"].as_str().unwrap()].clone();
        let deps: BTreeSet<String> = n["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| names[d["pkg"].as_str().unwrap()].clone())
            .collect();
        g.entry(name).or_insert_with(BTreeSet::new).extend(deps);
    }
    g
}

fn closure(g: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_string()];
    while let Some(n) = stack.pop() {
        for d in g.get(&n).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn dependency_invariants_hold() {
    let g = graph(&metadata());
    // (crate, forbidden anywhere in its dependency closure)
    let rules: &[(&str, &[&str])] = &[
        (
            "secc-ir",
            &[
                "egg",
                "inkwell",
                "llvm-sys",
                "cudarc",
                "protobuf",
                "onnx-protobuf",
                "secc-onnx",
                "secc-passes",
                "secc-codegen",
                "secc-artifact",
                "secc-runtime",
            ],
        ),
        (
            "secc-onnx",
            &[
                "egg",
                "inkwell",
                "llvm-sys",
                "cudarc",
                "secc-passes",
                "secc-codegen",
                "secc-runtime",
            ],
        ),
        (
            "secc-passes",
            &[
                "onnx-protobuf",
                "protobuf",
                "secc-onnx",
                "inkwell",
                "llvm-sys",
                "cudarc",
                "secc-codegen",
                "secc-runtime",
            ],
        ),
        (
            "secc-artifact",
            &[
                "secc-ir",
                "egg",
                "inkwell",
                "llvm-sys",
                "cudarc",
                "secc-onnx",
                "secc-passes",
                "secc-codegen",
                "secc-runtime",
            ],
        ),
        (
            "secc-codegen",
            &[
                "secc-onnx",
                "secc-passes",
                "secc-runtime",
                "egg",
                "onnx-protobuf",
            ],
        ),
        (
            "secc-runtime",
            &[
                "secc-ir",
                "egg",
                "inkwell",
                "llvm-sys",
                "secc-onnx",
                "secc-passes",
                "secc-codegen",
                "onnx-protobuf",
                "protobuf",
            ],
        ),
        (
            "secc-capi",
            &[
                "secc-ir",
                "egg",
                "inkwell",
                "llvm-sys",
                "secc-onnx",
                "secc-passes",
                "secc-codegen",
                "onnx-protobuf",
                "protobuf",
            ],
        ),
        (
            "run_cpu",
            &[
                "secc-ir",
                "egg",
                "inkwell",
                "llvm-sys",
                "secc-onnx",
                "secc-passes",
                "secc-codegen",
            ],
        ),
        // carried to bare GPU machines: the runtime and the driver API only
        (
            "gpu_check",
            &[
                "secc-ir",
                "egg",
                "inkwell",
                "llvm-sys",
                "secc-onnx",
                "secc-passes",
                "secc-codegen",
                "onnx-protobuf",
                "protobuf",
            ],
        ),
    ];
    let mut bad = vec![];
    for (krate, forbidden) in rules {
        assert!(g.contains_key(*krate), "crate {krate} not in the workspace");
        let c = closure(&g, krate);
        for f in *forbidden {
            if c.contains(*f) {
                bad.push(format!("{krate} must never depend on {f}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "Architecture invariants violated:\n{}",
        bad.join("\n")
    );
}
