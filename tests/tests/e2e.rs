//! End to end: every fixture compiled for the host CPU and run by secc-runtime agrees with
//! the reference interpreter on fresh random inputs at batch 1, 8 and 19 (more than one SE
//! image block, with a partial last block), with 1 and 2 threads.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::*;
use secc_codegen::compile;
use secc_ir::interp;

/// Kernel vs interpreter: relative error |a-b|/(1+|b|) <= 1e-4. Kernels accumulate in f32
/// with reordered (vectorised) sums and use libm expf; the interpreter accumulates in f64.
pub const KERNEL_TOL: f32 = 1e-4;

/// Blocked layouts as `secc` compiles for this host (16 lanes with AVX-512, else 8).
#[test]
fn every_fixture_runs_and_matches_the_interpreter() {
    let host = secc_codegen::vector_block(&cpu_opts().target);
    check_all(true, host, "native", false);
}

/// Plain layouts only (the kernels the GPU path and non-blockable ops use).
#[test]
fn every_fixture_runs_plain_and_matches_the_interpreter() {
    check_all(true, None, "native", false);
}

/// The GPU's form, on the CPU: plain layouts and every SE block split into the steps a CUDA
/// artifact launches (pool, FC1, FC2, scale; docs/kernels.md), so that their plan (buffers,
/// weights, arguments) and index arithmetic are checked where there is no GPU. The PTX
/// bodies differ from these only in how a step's work maps onto threads.
#[test]
fn every_fixture_runs_in_the_gpu_form_and_matches_the_interpreter() {
    check_all(true, None, "native", true);
}

/// The AVX2 artifact every x86-64-v3 machine runs: 8-lane blocks.
#[test]
fn every_fixture_runs_for_x86_64_v3_and_matches_the_interpreter() {
    check_all(true, Some(8), "x86-64-v3", false);
}

/// Without SE fusion every op of the chain runs as its own kernel (conv, gemm, matmul,
/// reduce, element-wise with broadcasting): the same checks cover those kernels.
#[test]
fn every_fixture_runs_unfused_and_matches_the_interpreter() {
    let host = secc_codegen::vector_block(&cpu_opts().target);
    check_all(false, host, "native", false);
}

fn check_all(fuse: bool, block: Option<u32>, cpu: &str, gpu_form: bool) {
    let opts = secc_codegen::CodegenOptions {
        target: secc_codegen::Target::Cpu { cpu: cpu.into() },
        gpu_form,
        ..cpu_opts()
    };
    for p in fixtures() {
        let mut g = import(&p);
        let mut pipeline = if fuse {
            secc_passes::pipeline::default_pipeline()
        } else {
            secc_passes::pipeline::no_fuse_pipeline()
        };
        pipeline.extend(secc_passes::pipeline::lowering(
            &secc_passes::pipeline::TargetOptions { block },
        ));
        secc_passes::PassManager::new(pipeline)
            .run(&mut g, |_, _| {})
            .unwrap();
        let bytes = compile(&g, &opts).unwrap_or_else(|e| panic!("{}: {e}", stem(&p)));
        for threads in [1, 2] {
            let mut model = secc_runtime::Model::from_bytes(bytes.clone())
                .and_then(|m| m.session(threads))
                .unwrap();
            let m = model.model().manifest();
            assert_eq!(
                m.se_blocks as usize,
                if fuse { expected_se(&stem(&p)) } else { 0 }
            );
            // the GPU's form: convolutions one output per work item
            if gpu_form {
                assert!(m.kernels.iter().all(|k| k.kind != "conv2d"), "{}", stem(&p));
            }
            // the split form: two FC steps per SE block, no fused SE kernel
            let fcs = m.kernels.iter().filter(|k| k.kind == "se_fc").count();
            let fused = m
                .kernels
                .iter()
                .filter(|k| k.kind == "squeeze_excite" || k.kind == "se_gate")
                .count();
            assert_eq!(
                (fcs, fused),
                if gpu_form {
                    (2 * m.se_blocks as usize, 0)
                } else {
                    (0, m.se_blocks as usize)
                },
                "{}: SE kernels",
                stem(&p)
            );
            for (batch, seed) in [(1u64, 21u64), (8, 22), (19, 23)] {
                let ins = random_inputs(&g, batch, seed);
                let want = interp::run(&g, &ins).unwrap();
                let rt_ins: Vec<secc_runtime::Tensor> = ins
                    .iter()
                    .map(|t| secc_runtime::Tensor::new(t.shape.clone(), t.data.clone()).unwrap())
                    .collect();
                let got = model.run(&rt_ins).unwrap();
                assert_eq!(got.len(), want.len(), "{}: output count", stem(&p));
                assert!(!got.is_empty());
                for (a, b) in got.iter().zip(&want) {
                    let e = max_rel_err(&from_runtime(a), b);
                    assert!(
                        e <= KERNEL_TOL,
                        "{} batch {batch} threads {threads}: max rel err {e}",
                        stem(&p)
                    );
                }
            }
        }
    }
}
