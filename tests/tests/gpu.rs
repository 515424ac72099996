//! The CUDA target end to end. Without a GPU: every fixture's launch contract is what the
//! kernels need, and a CUDA artifact edited after compilation is refused before any of its
//! PTX reaches a driver. With a GPU (skipped with a printed reason otherwise;
//! `SECC_REQUIRE_GPU=1` makes a missing GPU a failure): every fixture on the GPU against the
//! reference interpreter at batch 1 and 8, the networks and exporter networks against ONNX
//! Runtime's outputs, a changed batch (a new graph capture) and back (a replay), and inputs
//! and outputs already in device memory.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::*;
use secc_artifact::{Artifact, DimDecl, Manifest};
use secc_codegen::{CodegenOptions, Target};
use secc_ir::interp;

/// GPU vs interpreter: |a-b|/(1+|b|); the PTX's exp is `ex2.approx` (2 ulp).
const GPU_TOL: f32 = 1e-4;

fn cuda_opts() -> CodegenOptions {
    CodegenOptions {
        target: Target::Cuda {
            arch: "sm_80".into(),
        },
        ..cpu_opts()
    }
}

/// A graph through the passes the CUDA target runs (no CPU lowering: plain layouts).
fn cuda_graph(p: &std::path::Path) -> secc_ir::Graph {
    let mut g = import(p);
    run_passes_for(&mut g, None);
    g
}

fn cuda_artifact(p: &std::path::Path) -> Vec<u8> {
    secc_codegen::compile(&cuda_graph(p), &cuda_opts())
        .unwrap_or_else(|e| panic!("{}: {e}", stem(p)))
}

/// Whether the GPU tests run here: false, with the reason printed, without a GPU (a
/// failure instead under `SECC_REQUIRE_GPU=1`).
fn gpu_here() -> bool {
    let why = match secc_runtime::cuda_devices() {
        Ok(n) if n > 0 => return true,
        Ok(_) => "no CUDA device".to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        std::env::var("SECC_REQUIRE_GPU").as_deref() != Ok("1"),
        "SECC_REQUIRE_GPU=1 but no GPU can be used: {why}"
    );
    eprintln!("SKIPPED: GPU tests ({why})");
    false
}

#[test]
fn every_fixture_has_the_launch_contract_its_kernels_need() {
    for p in fixtures() {
        let a = Artifact::parse(cuda_artifact(&p)).unwrap();
        let m = &a.manifest;
        let n = m.symbols.len();
        for k in &m.kernels {
            let l = k.launch.as_ref().expect("every CUDA kernel has a launch");
            // parameters: the buffers in argument order, then every symbol
            let want: Vec<_> = k
                .args
                .iter()
                .map(|&b| secc_artifact::ParamDecl::Buffer(b))
                .chain((0..n as u32).map(secc_artifact::ParamDecl::Symbol))
                .collect();
            assert_eq!(l.params, want, "{}: {}", stem(&p), k.name);
            for batch in [1, 8] {
                let syms = m.sizing_binding(batch, 64);
                let d = l.dims(&syms).unwrap().expect("work to do");
                let out = &m.buffers[k.writes[0] as usize].shape;
                let work = DimDecl::elements(out, &syms).unwrap();
                let what = format!("{}: {} at batch {batch}", stem(&p), k.name);
                match k.kind.as_str() {
                    // the SE pool: a CTA per (image, channel) plane, a shared float per warp
                    "se_pool" => {
                        assert!(k.barrier, "{what}");
                        assert_eq!((u64::from(d.grid[0]), d.shared_bytes), (work, 16), "{what}");
                    }
                    // the SE FC layers: a warp per output row, four rows per CTA
                    "se_fc" => {
                        let ctas = batch * (work / batch).div_ceil(4);
                        assert_eq!((u64::from(d.grid[0]), d.shared_bytes), (ctas, 0), "{what}");
                    }
                    // the 1x1 convolutions' GEMM: a CTA per 64 channels x 64 pixels of an
                    // image, its two 16 x 64 tiles in shared memory
                    "conv2d_gemm" => {
                        let o = out[1].eval(&syms).unwrap();
                        let plane = work / batch / o;
                        let ctas = batch * o.div_ceil(64) * plane.div_ceil(64);
                        assert_eq!(
                            (u64::from(d.grid[0]), d.shared_bytes),
                            (ctas, 8192),
                            "{what}"
                        );
                    }
                    // any other barrier inside: one CTA per image, scratch in shared memory
                    _ if k.barrier => {
                        assert_eq!(u64::from(d.grid[0]), batch, "{what}");
                        assert!(d.shared_bytes > 0, "{what}");
                    }
                    // grid-stride: one thread per element of the first result, up to 2^20
                    _ => {
                        let ctas = work.div_ceil(128).min(8192);
                        assert_eq!((u64::from(d.grid[0]), d.shared_bytes), (ctas, 0), "{what}");
                    }
                }
                assert_eq!(d.block, [128, 1, 1]);
            }
        }
    }
}

/// Re-packs a CUDA artifact after `edit` (of the manifest and the PTX text), checksums
/// recomputed.
fn repack(bytes: &[u8], edit: impl FnOnce(&mut Manifest, &mut String)) -> Vec<u8> {
    let a = Artifact::parse(bytes.to_vec()).unwrap();
    let mut m = a.manifest.clone();
    let w = a.section("weights").unwrap().to_vec();
    let mut ptx = String::from_utf8(a.section("ptx").unwrap().to_vec()).unwrap();
    edit(&mut m, &mut ptx);
    secc_artifact::write(m, &[("weights", &w), ("ptx", ptx.as_bytes())]).unwrap()
}

#[test]
fn an_edited_cuda_artifact_is_refused_before_the_driver() {
    let good = cuda_artifact(&models_dir().join("se_torchvision.onnx"));
    type Edit = Box<dyn Fn(&mut Manifest, &mut String)>;
    let edits: Vec<(&str, Edit, &str)> = vec![
        (
            "the SE pool's grid made one CTA",
            Box::new(|m, _| m.kernels[0].launch.as_mut().unwrap().grid[0] = DimDecl::Known(1)),
            "do not match the code",
        ),
        (
            "shared memory halved",
            Box::new(|m, _| m.kernels[0].launch.as_mut().unwrap().shared_bytes /= 2),
            "do not match the code",
        ),
        (
            "two parameters swapped",
            Box::new(|m, _| m.kernels[0].launch.as_mut().unwrap().params.swap(0, 1)),
            "do not match the code",
        ),
        (
            "the digest removed from the PTX",
            Box::new(|_, ptx| *ptx = ptx.replace("secc_layout_digest", "other_name")),
            "defines no secc_layout_digest",
        ),
        (
            "a launch contract removed",
            Box::new(|m, _| m.kernels[0].launch = None),
            "no launch contract",
        ),
    ];
    for (what, edit, want) in edits {
        let e = secc_runtime::Model::from_bytes(repack(&good, |m, p| edit(m, p)))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{what}: {e}");
    }
    // unedited, it gets as far as the GPU: loads where there is one, else says why not
    match secc_runtime::Model::from_bytes(repack(&good, |_, _| {})) {
        Ok(m) => assert!(m.device().is_some()),
        Err(e) => assert_eq!(e.kind(), secc_runtime::ErrorKind::Device, "{e}"),
    }
}

fn to_runtime(ins: &[interp::Tensor]) -> Vec<secc_runtime::Tensor> {
    ins.iter()
        .map(|t| secc_runtime::Tensor::new(t.shape.clone(), t.data.clone()).unwrap())
        .collect()
}

fn assert_close(name: &str, got: &[secc_runtime::Tensor], want: &[interp::Tensor], tol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: output count");
    for (a, b) in got.iter().zip(want) {
        let e = max_rel_err(&from_runtime(a), b);
        assert!(e <= tol, "{name}: max rel err {e}");
    }
}

#[test]
fn every_fixture_on_the_gpu_matches_the_interpreter() {
    if !gpu_here() {
        return;
    }
    for p in fixtures() {
        let g = cuda_graph(&p);
        let bytes = secc_codegen::compile(&g, &cuda_opts()).unwrap();
        let mut s = secc_runtime::Model::from_bytes(bytes)
            .and_then(|m| m.session(1))
            .unwrap_or_else(|e| panic!("{}: {e}", stem(&p)));
        // batch 1, 8, then 1 again: a new capture per binding, then a replay
        for (batch, seed) in [(1u64, 31u64), (8, 32), (1, 33)] {
            let ins = random_inputs(&g, batch, seed);
            let want = interp::run(&g, &ins).unwrap();
            let got = s.run(&to_runtime(&ins)).unwrap();
            assert_close(&format!("{} batch {batch}", stem(&p)), got, &want, GPU_TOL);
        }
    }
}

#[test]
fn networks_on_the_gpu_match_onnx_runtime() {
    if !gpu_here() {
        return;
    }
    let mut models: Vec<std::path::PathBuf> = exporter_fixtures();
    let nets = models_dir().join("networks");
    for n in ["se_resnet50", "mobilenetv3_large", "efficientnet_b0"] {
        let p = nets.join(format!("{n}.onnx"));
        if p.exists() {
            models.push(p);
        } else {
            eprintln!("SKIPPED {n}: run `.venv/bin/python tests/models/gen_networks.py`");
        }
    }
    for p in models {
        let dir = p.parent().unwrap();
        let name = stem(&p);
        let mut s = secc_runtime::Model::from_bytes(cuda_artifact(&p))
            .and_then(|m| m.session(1))
            .unwrap();
        let (xs, x) = npy::read_f32(&dir.join(format!("{name}.in0.npy")));
        let (ys, want) = npy::read_f32(&dir.join(format!("{name}.ort0.npy")));
        let y = s.run(&[secc_runtime::Tensor::new(xs, x).unwrap()]).unwrap();
        assert_eq!(y[0].shape, ys, "{name}");
        let scale = want.iter().fold(1f32, |a, v| a.max(v.abs()));
        let e = y[0]
            .data
            .iter()
            .zip(&want)
            .fold(0f32, |a, (p, q)| a.max((p - q).abs()))
            / scale;
        assert!(
            e <= 1e-4,
            "{name}: differs from ONNX Runtime by {e} (scaled)"
        );
    }
}

#[test]
fn device_pointer_inputs_and_outputs() {
    if !gpu_here() {
        return;
    }
    use cudarc::driver::{CudaContext, DevicePtr};
    let p = models_dir().join("se_torchvision.onnx");
    let g = cuda_graph(&p);
    let model = secc_runtime::Model::from_bytes(cuda_artifact(&p)).unwrap();
    let mut s = model.session(1).unwrap();
    let ins = random_inputs(&g, 3, 41);
    let want = interp::run(&g, &ins).unwrap();
    let ctx = CudaContext::new(0).unwrap();
    let stream = ctx.default_stream();
    let x = stream.clone_htod(&ins[0].data).unwrap();
    let y = stream.alloc_zeros::<f32>(want[0].data.len()).unwrap();
    stream.synchronize().unwrap();
    let (xp, _) = x.device_ptr(&stream);
    let (yp, _) = y.device_ptr(&stream);
    for _ in 0..2 {
        // the second call replays the graph captured for these addresses
        // SAFETY: x holds the input's elements and y has room for the output, both on
        // device 0 (the model's), written and synchronised before the call.
        unsafe {
            s.run_device(
                &[secc_runtime::DeviceTensor {
                    ptr: xp,
                    shape: &ins[0].shape,
                }],
                &[yp],
            )
        }
        .unwrap();
        let got = stream.clone_dtoh(&y).unwrap();
        let t = secc_runtime::Tensor::new(want[0].shape.clone(), got).unwrap();
        assert_close("device pointers", &[t], &want, GPU_TOL);
    }
    // a wrong shape is refused before anything runs
    // SAFETY: refused at binding: no kernel reads the addresses
    let e = unsafe {
        s.run_device(
            &[secc_runtime::DeviceTensor {
                ptr: xp,
                shape: &[3, 1, 2],
            }],
            &[yp],
        )
    }
    .unwrap_err();
    assert!(e.to_string().contains("expected shape"), "{e}");
}
