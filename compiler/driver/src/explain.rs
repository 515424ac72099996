//! `secc explain`: every SE candidate of a model, fused as which block or why not, as the
//! se-fuse pass itself reports it ([`secc_passes::se_fuse::SeReport`]).
use crate::out::out;
use anyhow::{Context, Result};
use secc_passes::se_fuse::{Candidate, CandidateKind, Outcome, SeReport};
use secc_passes::{pipeline, PassManager, SeFuse};
use std::path::Path;

/// Imports the model, runs the default passes before `se-fuse`, then `se-fuse` with its
/// report.
pub fn report(model: &Path, opts: &secc_onnx::ImportOptions) -> Result<SeReport> {
    let mut g = secc_onnx::import_file(model, opts)
        .with_context(|| format!("importing {}", model.display()))?;
    let before: Vec<_> = pipeline::ALL
        .iter()
        .take_while(|n| **n != "se-fuse")
        .map(|n| pipeline::by_name(n))
        .collect::<Result<_, _>>()?;
    PassManager::new(before)
        .run(&mut g, |_, _| {})
        .with_context(|| format!("optimising {}", model.display()))?;
    let mut log = secc_passes::PassLog::default();
    let (_, report) = SeFuse::default()
        .run_report(&mut g, &mut log)
        .with_context(|| format!("fusing SE blocks of {}", model.display()))?;
    Ok(report)
}

/// One candidate as JSON: node names, types, `fused`, `block`, `reason`.
pub fn candidate_json(c: &Candidate) -> serde_json::Value {
    let mut j = serde_json::json!({
        "kind": match c.kind { CandidateKind::Pool => "pool", CandidateKind::GateMul => "gate_mul" },
        "node": c.node_name,
        "op": c.op,
        "input_type": c.input_type,
        "output_type": c.output_type,
        "mul": c.mul_name,
    });
    match &c.outcome {
        Outcome::Fused {
            block,
            se_node,
            spelling,
        } => {
            j["fused"] = true.into();
            j["block"] = (*block).into();
            j["se_node"] = se_node.clone().into();
            j["spelling"] = spelling.clone().into();
            j["reason"] = serde_json::Value::Null;
        }
        Outcome::NotFused(r) => {
            j["fused"] = false.into();
            j["reason"] = r.to_string().into();
            j["reason_code"] = r.code().into();
        }
    }
    j
}

/// Prints the report as text or JSON.
pub fn print(model: &Path, r: &SeReport, json: bool) -> Result<()> {
    if json {
        let cs: Vec<_> = r.candidates.iter().map(candidate_json).collect();
        let fused = r
            .candidates
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fused { .. }))
            .count();
        out!(
            "{}",
            serde_json::json!({"model": model.display().to_string(), "se_blocks": fused, "candidates": cs})
        );
        return Ok(());
    }
    if r.candidates.is_empty() {
        out!("no SE candidates: no global pooling and no multiply by a per-channel gate");
        return Ok(());
    }
    for c in &r.candidates {
        let what = match c.kind {
            CandidateKind::Pool => "pool",
            CandidateKind::GateMul => "gate multiply",
        };
        out!("{what} {}: {} -> {}", c.node, c.input_type, c.output_type);
        match &c.outcome {
            Outcome::Fused {
                block,
                se_node,
                spelling,
            } => out!(
                "  fused as SE block {block} ({spelling}): {} replaced by {se_node}",
                c.mul.as_deref().unwrap_or("the multiply")
            ),
            Outcome::NotFused(reason) => out!("  not fused: {reason}"),
        }
    }
    Ok(())
}
