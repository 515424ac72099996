//! Convolution kernels: secc's generated (LLVM) kernels vs im2col + the `gemm` crate (the
//! GEMM candle and faer use), on the convolution shapes of SE-ResNet-50 and MobileNetV3,
//! batch 1, side by side in one run. The numbers and the decision are in docs/benchmarks.md.
//!
//!     cargo bench -p secc-tests --bench conv_vs_gemm [-- --threads 2]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly
use gemm::Parallelism;
use secc_codegen::{compile, CodegenOptions, Target};
use secc_ir::{ConstData, Conv2dAttrs, Dim, Graph, Op, TensorType};
use std::time::Instant;

struct Case {
    name: &'static str,
    c: usize,
    o: usize,
    hw: usize,
    k: usize,
    stride: usize,
    group: usize,
}

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// secc: one Conv node compiled and run by the runtime; median microseconds.
fn secc_us(cs: &Case, threads: usize) -> f64 {
    let mut g = Graph::new("bench");
    let x = g.add_input(
        "x",
        TensorType::f32([
            Dim::Known(1),
            Dim::Known(cs.c as u64),
            Dim::Known(cs.hw as u64),
            Dim::Known(cs.hw as u64),
        ]),
    );
    let w = g.add_const(
        ConstData::new(
            vec![cs.o, cs.c / cs.group, cs.k, cs.k],
            rand_vec(cs.o * cs.c / cs.group * cs.k * cs.k, 1),
        ),
        None,
    );
    let b = g.add_const(ConstData::new(vec![cs.o], rand_vec(cs.o, 2)), None);
    let p = (cs.k / 2) as u64;
    let y = g
        .add_node(
            Op::Conv2d(Conv2dAttrs {
                strides: [cs.stride as u64; 2],
                pads: [p; 4],
                dilations: [1, 1],
                group: cs.group as u64,
                act: None,
                residual: false,
                gated: false,
                pool: false,
            }),
            &[x, w, b],
            None,
        )
        .unwrap();
    g.add_output("y", y);
    let bytes = compile(
        &g,
        &CodegenOptions {
            target: Target::Cpu {
                cpu: "native".into(),
            },
            compiler_version: "bench".into(),
            memory_limit: None,
            gpu_form: false,
            winograd: true,
        },
    )
    .unwrap();
    let mut m = secc_runtime::Model::from_bytes(bytes)
        .and_then(|m| m.session(threads))
        .unwrap();
    let xin = secc_runtime::Tensor::new(
        vec![1, cs.c, cs.hw, cs.hw],
        rand_vec(cs.c * cs.hw * cs.hw, 3),
    )
    .unwrap();
    m.bench(&[xin], 5, 30).unwrap().percentile(50.0)
}

/// im2col (skipped for 1x1 stride 1) + gemm::gemm, per group; median microseconds.
fn gemm_us(cs: &Case, threads: usize) -> f64 {
    let (c, o, hw, k, s, g) = (cs.c, cs.o, cs.hw, cs.k, cs.stride, cs.group);
    let p = k / 2;
    let oh = (hw + 2 * p - k) / s + 1;
    let n = oh * oh;
    let (cg, og) = (c / g, o / g);
    let kk = cg * k * k;
    let x = rand_vec(c * hw * hw, 3);
    let w = rand_vec(o * kk, 1);
    let mut col = vec![0f32; kk * n];
    let mut y = vec![0f32; o * n];
    let direct = k == 1 && s == 1;
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut run = || {
        for gi in 0..g {
            let src: &[f32] = if direct {
                &x[gi * cg * n..(gi + 1) * cg * n]
            } else {
                for ci in 0..cg {
                    for ky in 0..k {
                        for kx in 0..k {
                            let row = (ci * k + ky) * k + kx;
                            for oy in 0..oh {
                                let iy = (oy * s + ky) as isize - p as isize;
                                for ox in 0..oh {
                                    let ix = (ox * s + kx) as isize - p as isize;
                                    col[row * n + oy * oh + ox] = if iy >= 0
                                        && ix >= 0
                                        && (iy as usize) < hw
                                        && (ix as usize) < hw
                                    {
                                        x[((gi * cg + ci) * hw + iy as usize) * hw + ix as usize]
                                    } else {
                                        0.0
                                    };
                                }
                            }
                        }
                    }
                }
                &col
            };
            let dst = &mut y[gi * og * n..(gi + 1) * og * n];
            // SAFETY: row-major [og, n] = [og, kk] x [kk, n]; every pointer covers the
            // extent implied by its dims and strides.
            unsafe {
                gemm::gemm(
                    og,
                    n,
                    kk,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    w[gi * og * kk..].as_ptr(),
                    1,
                    kk as isize,
                    src.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
    };
    pool.install(|| {
        for _ in 0..5 {
            run();
        }
        median(
            (0..30)
                .map(|_| {
                    let t = Instant::now();
                    run();
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect(),
        )
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let cases = [
        Case {
            name: "1x1 64->256 56x56 (ResNet)",
            c: 64,
            o: 256,
            hw: 56,
            k: 1,
            stride: 1,
            group: 1,
        },
        Case {
            name: "1x1 256->64 56x56 (ResNet)",
            c: 256,
            o: 64,
            hw: 56,
            k: 1,
            stride: 1,
            group: 1,
        },
        Case {
            name: "1x1 1024->256 14x14 (ResNet)",
            c: 1024,
            o: 256,
            hw: 14,
            k: 1,
            stride: 1,
            group: 1,
        },
        Case {
            name: "1x1 672->112 14x14 (MobileNetV3)",
            c: 672,
            o: 112,
            hw: 14,
            k: 1,
            stride: 1,
            group: 1,
        },
        Case {
            name: "3x3 64->64 56x56 (ResNet)",
            c: 64,
            o: 64,
            hw: 56,
            k: 3,
            stride: 1,
            group: 1,
        },
        Case {
            name: "3x3 256->256 14x14 (ResNet)",
            c: 256,
            o: 256,
            hw: 14,
            k: 3,
            stride: 1,
            group: 1,
        },
        Case {
            name: "3x3/2 128->128 56x56 (ResNet)",
            c: 128,
            o: 128,
            hw: 56,
            k: 3,
            stride: 2,
            group: 1,
        },
        Case {
            name: "7x7/2 3->64 224x224 (ResNet stem)",
            c: 3,
            o: 64,
            hw: 224,
            k: 7,
            stride: 2,
            group: 1,
        },
        Case {
            name: "dw 3x3 72 56x56 (MobileNetV3)",
            c: 72,
            o: 72,
            hw: 56,
            k: 3,
            stride: 1,
            group: 72,
        },
        Case {
            name: "dw 5x5/2 72 56x56 (MobileNetV3)",
            c: 72,
            o: 72,
            hw: 56,
            k: 5,
            stride: 2,
            group: 72,
        },
    ];
    println!("| conv (batch 1, {threads} threads) | GFLOP | secc us | im2col+gemm us | secc GFLOP/s | gemm GFLOP/s | secc / gemm time |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for cs in &cases {
        let p = cs.k / 2;
        let oh = (cs.hw + 2 * p - cs.k) / cs.stride + 1;
        let flop = 2.0 * (cs.o * oh * oh * cs.c / cs.group * cs.k * cs.k) as f64;
        // interleave, best of 3 rounds each
        let mut s = f64::INFINITY;
        let mut gm = f64::INFINITY;
        for _ in 0..3 {
            s = s.min(secc_us(cs, threads));
            gm = gm.min(gemm_us(cs, threads));
        }
        println!(
            "| {} | {:.3} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2} |",
            cs.name,
            flop / 1e9,
            s,
            gm,
            flop / s / 1e3,
            flop / gm / 1e3,
            s / gm
        );
    }
}
