//! Pass soundness and SE fusion on every fixture: interpret(before) == interpret(after) on
//! fresh random inputs at batch 1 and 3 (also on the exporter networks of
//! tests/models/exporters); the importer + interpreter agree with ONNX Runtime;
//! the IR after each pass is snapshotted.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::*;
use secc_ir::interp::{run, Tensor};

/// Tolerance: relative error (|a-b| / (1+|b|)) of 1e-5 between interpreter runs; the
/// interpreter accumulates in f64, so only op reordering by a pass can differ.
const PASS_TOL: f32 = 1e-5;
/// Interpreter vs ONNX Runtime (f32 accumulation there): 1e-4.
const ORT_TOL: f32 = 1e-4;

#[test]
fn every_fixture_fuses_the_expected_number_of_se_blocks() {
    let mut failures = vec![];
    for p in fixtures() {
        let mut g = import(&p);
        run_passes(&mut g);
        let (got, want) = (count_se(&g), expected_se(&stem(&p)));
        if got != want {
            failures.push(format!(
                "{}: fused {got}, expected {want}\n{}",
                stem(&p),
                secc_ir::print::print(&g)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn passes_preserve_semantics_on_random_inputs() {
    for p in all_models() {
        let before = import(&p);
        let mut after = before.clone();
        run_passes(&mut after);
        for (batch, seed) in [(1, 11), (3, 12)] {
            let ins = random_inputs(&before, batch, seed);
            let a = run(&before, &ins).unwrap();
            let b = run(&after, &ins).unwrap();
            assert_eq!(a.len(), b.len());
            assert!(!a.is_empty());
            for (x, y) in a.iter().zip(&b) {
                let e = max_rel_err(y, x);
                assert!(
                    e <= PASS_TOL,
                    "{} batch {batch}: passes changed results by {e}",
                    stem(&p)
                );
            }
        }
    }
}

fn read_npy(p: &std::path::Path) -> Tensor {
    npy::read(p)
}

#[test]
fn importer_and_interpreter_match_onnx_runtime() {
    for p in fixtures() {
        let g = import(&p);
        let mut ins = vec![];
        for i in 0..g.inputs.len() {
            ins.push(read_npy(&p.with_extension(format!("in{i}.npy"))));
        }
        let got = run(&g, &ins).unwrap();
        assert_eq!(got.len(), g.outputs.len());
        for (i, t) in got.iter().enumerate() {
            let want = read_npy(&p.with_extension(format!("ort{i}.npy")));
            let e = max_rel_err(t, &want);
            assert!(
                e <= ORT_TOL,
                "{} output {i}: interpreter differs from ONNX Runtime by {e}",
                stem(&p)
            );
        }
    }
}

#[test]
fn ir_after_each_pass_snapshots() {
    for p in fixtures() {
        let mut g = import(&p);
        let mut pm = secc_passes::PassManager::new(secc_passes::pipeline::default_pipeline());
        pm.print_after = secc_passes::PrintAfter::All;
        let mut text = String::new();
        pm.run(&mut g, |pass, ir| {
            text.push_str(&format!("=== after {pass} ===\n{ir}\n"));
        })
        .unwrap();
        insta::assert_snapshot!(stem(&p), text);
    }
}

/// Every pass on its own preserves semantics: after each pass of the pipeline, the graph
/// interprets to the same outputs as before that pass, on fresh random inputs.
#[test]
fn each_pass_individually_preserves_semantics() {
    for p in all_models() {
        let mut g = import(&p);
        for (i, name) in secc_passes::pipeline::ALL.iter().enumerate() {
            let ins = random_inputs(&g, 2, 100 + i as u64);
            let before = run(&g, &ins).unwrap();
            let pass = secc_passes::pipeline::by_name(name).unwrap();
            let mut log = secc_passes::PassLog::default();
            pass.run(&mut g, &mut log).unwrap();
            g.verify()
                .unwrap_or_else(|e| panic!("{} after {name}: {e}", stem(&p)));
            let after = run(&g, &ins).unwrap();
            for (a, b) in after.iter().zip(&before) {
                let e = max_rel_err(a, b);
                assert!(
                    e <= PASS_TOL,
                    "{}: pass {name} changed results by {e}",
                    stem(&p)
                );
            }
        }
        // the lowering passes, for both vector widths, on the optimised graph
        for block in [8, 16] {
            let t = secc_passes::pipeline::TargetOptions { block: Some(block) };
            let mut lowered = g.clone();
            let ins = random_inputs(&g, 3, 200 + u64::from(block));
            let before = run(&g, &ins).unwrap();
            for name in secc_passes::pipeline::LOWERING {
                let pass = secc_passes::pipeline::by_name_for(name, &t).unwrap();
                pass.run(&mut lowered, &mut secc_passes::PassLog::default())
                    .unwrap();
                lowered
                    .verify()
                    .unwrap_or_else(|e| panic!("{} after {name}: {e}", stem(&p)));
            }
            let after = run(&lowered, &ins).unwrap();
            for (a, b) in after.iter().zip(&before) {
                assert!(
                    max_rel_err(a, b) <= PASS_TOL,
                    "{}: lowering changed results",
                    stem(&p)
                );
            }
        }
    }
}

/// Every SE-fusion rule and every `canonicalise` rewrite fires on at least one fixture or
/// exporter network, so each is covered by the soundness checks above (a rule that never
/// fires would be untested).
#[test]
fn every_rewrite_rule_fires_on_some_fixture() {
    // with and without affine-fold: conv-bias-add only matters when the bias add could not
    // be folded into the conv beforehand
    let without_fold: Vec<Box<dyn secc_passes::Pass>> = secc_passes::pipeline::ALL
        .iter()
        .filter(|n| **n != "affine-fold")
        .map(|n| secc_passes::pipeline::by_name(n).unwrap())
        .collect();
    let mut fired = std::collections::BTreeSet::new();
    for pipeline in [secc_passes::pipeline::default_pipeline(), without_fold] {
        let mut pm = secc_passes::PassManager::new(pipeline);
        for p in all_models() {
            let mut g = import(&p);
            pm.run(&mut g, |_, _| {}).unwrap();
            for (_, line) in &pm.log.lines {
                if let Some(rest) = line.strip_prefix("rules applied: ") {
                    for r in rest.split(", ") {
                        if let Some((name, _)) = r.rsplit_once('x') {
                            fired.insert(name.to_string());
                        }
                    }
                }
            }
        }
    }
    let mut all: Vec<String> = secc_passes::se_fuse::rules::rules()
        .iter()
        .map(|r| r.name.to_string())
        .collect();
    all.extend(secc_passes::canon::RULES.iter().map(|r| r.to_string()));
    let missing: Vec<&String> = all.iter().filter(|r| !fired.contains(*r)).collect();
    assert!(
        missing.is_empty(),
        "rules never exercised by a fixture: {missing:?}"
    );
}
