//! The GPU check: runs secc CUDA artifacts on a real GPU through `secc-runtime` alone (no
//! compiler, no LLVM, no Python), so it runs on a bare GPU machine. `scripts/gpu.sh
//! prepare` compiles everything it needs into `gpu-check/` next to this binary.
//!
//! Usage: `gpu_check DIR [--bench] [--device N]`
//!
//! For every `NAME.cuda.bin` in DIR and in DIR/bench:
//! - with `NAME.cpu.bin`: both on the same fresh pseudo-random inputs at batch 1, 8, then 1
//!   again (a new graph capture per binding, then a replay), outputs within `TOL`;
//! - with `NAME.in0.npy` and `NAME.ort0.npy` (or `NAME.sK.*` per image size of a dynamic
//!   model): ONNX Runtime's output within `ORT_TOL` of its largest magnitude;
//! - then inputs and outputs in device memory (`Session::run_device`), twice, bit-identical
//!   to the host-memory run.
//!
//! `--bench` times `DIR/bench/*.cuda.bin` with device-memory I/O: the SE models against the
//! device's copy bandwidth measured in the same run, the networks in milliseconds.
//! Exits 1 when any check fails.
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr};
use secc_runtime::{DType, DeviceTensor, LoadOptions, Model, Session, Tensor};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

type R<T> = Result<T, Box<dyn Error>>;

/// GPU vs CPU artifact, `|a - b| / (1 + |b|)`: each is within 1e-4 of the interpreter
/// (the PTX's exp is `ex2.approx`), so the two within twice that.
const TOL: f32 = 2e-4;
/// GPU vs ONNX Runtime, `max |a - b| / max(1, max |b|)` (the networks' test tolerance).
const ORT_TOL: f32 = 1e-4;

fn main() {
    match real_main() {
        Ok(0) => println!("gpu_check: all checks passed"),
        Ok(n) => {
            println!("gpu_check: {n} check(s) FAILED");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("gpu_check: error: {e}");
            std::process::exit(1);
        }
    }
}

fn real_main() -> R<usize> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(
        args.first()
            .ok_or("usage: gpu_check DIR [--bench] [--device N]")?,
    );
    let device = match args.iter().position(|a| a == "--device") {
        Some(i) => args.get(i + 1).ok_or("--device needs a number")?.parse()?,
        None => 0,
    };
    let opts = LoadOptions { device };
    let count = secc_runtime::cuda_devices()?;
    println!("CUDA devices: {count}");
    if device >= count {
        return Err(format!("no CUDA device {device} ({count} found)").into());
    }
    let ctx = CudaContext::new(device).map_err(|e| format!("CUDA device {device}: {e}"))?;
    println!("device {device}: {}", ctx.name()?);
    let stream = ctx.new_stream()?;
    let mut failed = 0;
    let bench_dir = dir.join("bench");
    let mut all = artifacts(&dir)?;
    if bench_dir.is_dir() {
        all.extend(artifacts(&bench_dir)?);
    }
    for (name, path) in all {
        let here = path.parent().unwrap_or(&dir);
        match check_model(here, &name, &path, &opts, &stream) {
            Ok(notes) => println!("ok   {name}: {notes}"),
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    if args.iter().any(|a| a == "--bench") {
        bench(&bench_dir, &opts, &stream)?;
    }
    Ok(failed)
}

/// `(NAME, path)` of every `NAME.cuda.bin` in `dir`, sorted by name.
fn artifacts(dir: &Path) -> R<Vec<(String, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let p = e?.path();
        let file = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        if let Some(name) = file.strip_suffix(".cuda.bin") {
            v.push((name.to_string(), p.clone()));
        }
    }
    v.sort();
    Ok(v)
}

fn check_model(
    dir: &Path,
    name: &str,
    path: &Path,
    opts: &LoadOptions,
    st: &Arc<CudaStream>,
) -> R<String> {
    let model = Model::load_with(path, opts)?;
    let mut gpu = model.session(1)?;
    let mut notes = Vec::new();
    let mut inputs = Vec::new();
    let cpu_path = dir.join(format!("{name}.cpu.bin"));
    if cpu_path.exists() {
        let mut cpu = Model::load(&cpu_path)?.session(secc_runtime::available_cores())?;
        // a binding's first run launches kernel by kernel, its second captures a graph, its
        // third replays it: batch 1 and 8 alternate, so each replay follows a changed batch
        for (batch, seed) in [(1, 11), (8, 12), (1, 13), (8, 14), (1, 15), (8, 16)] {
            let ins = random_inputs(&model, batch, seed);
            let e = max_err(gpu.run(&ins)?, cpu.run(&ins)?)?;
            if e > TOL {
                return Err(format!(
                    "batch {batch}: differs from the CPU by {e:.2e} (tolerance {TOL:.0e})"
                )
                .into());
            }
            notes.push(format!("batch {batch} vs CPU {e:.1e}"));
            inputs = ins;
        }
    }
    for (tag, xs, ys) in ort_refs(dir, name) {
        let (ins, e) = against_ort(&xs, &ys, &mut gpu).map_err(|e| format!("{tag}: {e}"))?;
        notes.push(format!("{tag} vs ONNX Runtime {e:.1e}"));
        inputs = ins;
    }
    if inputs.is_empty() {
        return Err(
            format!("neither {name}.cpu.bin nor ONNX Runtime outputs to compare with").into(),
        );
    }
    if model
        .manifest()
        .outputs
        .iter()
        .all(|o| model.manifest().buffers[o.buffer as usize].dtype != "i64")
    {
        device_io(&mut gpu, &inputs, st)?;
        notes.push("device I/O identical".into());
    }
    Ok(notes.join(", "))
}

/// ONNX Runtime's recorded inputs and outputs of `name` in `dir`: `NAME.in0.npy`, ... with
/// `NAME.ort0.npy`, ..., and per image size `NAME.sK.in0.npy`, ... (dynamic models).
fn ort_refs(dir: &Path, name: &str) -> Vec<(String, Vec<PathBuf>, Vec<PathBuf>)> {
    let files = |stem: &str, kind: &str| -> Vec<PathBuf> {
        (0..)
            .map(|i| dir.join(format!("{stem}.{kind}{i}.npy")))
            .take_while(|p| p.exists())
            .collect()
    };
    let tags = std::iter::once(String::new()).chain((0..8).map(|k| format!(".s{k}")));
    tags.filter_map(|t| {
        let (x, y) = (
            files(&format!("{name}{t}"), "in"),
            files(&format!("{name}{t}"), "ort"),
        );
        let tag = if t.is_empty() {
            "reference".to_string()
        } else {
            format!("size {}", &t[2..])
        };
        (!x.is_empty() && !y.is_empty()).then_some((tag, x, y))
    })
    .collect()
}

/// Deterministic pseudo-random inputs in [-2, 2) for `batch` images (other symbols 64).
fn random_inputs(model: &Model, batch: u64, seed: u64) -> Vec<Tensor> {
    let m = model.manifest();
    let syms = m.sizing_binding(batch, 64);
    let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
    m.inputs
        .iter()
        .map(|io| {
            let shape: Vec<usize> = m.buffers[io.buffer as usize]
                .shape
                .iter()
                .map(|d| d.eval(&syms).unwrap_or(1) as usize)
                .collect();
            let data = (0..shape.iter().product::<usize>())
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
                })
                .collect();
            Tensor {
                shape,
                data,
                ints: Vec::new(),
                dtype: DType::F32,
            }
        })
        .collect()
}

/// The largest `|a - b| / (1 + |b|)` over every output; int64 outputs must be equal.
fn max_err(got: &[Tensor], want: &[Tensor]) -> R<f32> {
    if got.len() != want.len() {
        return Err(format!("{} outputs, expected {}", got.len(), want.len()).into());
    }
    let mut worst = 0f32;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        if a.shape != b.shape || a.dtype != b.dtype {
            return Err(format!("output {i}: shape {:?}, expected {:?}", a.shape, b.shape).into());
        }
        if a.ints != b.ints {
            return Err(format!("output {i}: int64 values differ").into());
        }
        for (p, q) in a.data.iter().zip(&b.data) {
            let e = (p - q).abs() / (1.0 + q.abs());
            // NaN compares false: count it as a failure
            worst = if e <= worst {
                worst
            } else if e.is_nan() {
                f32::INFINITY
            } else {
                e
            };
        }
    }
    Ok(worst)
}

/// The model on ONNX Runtime's recorded inputs `xs`; returns them and the largest error
/// against its outputs `ys`, each scaled by that output's largest magnitude.
fn against_ort(xs: &[PathBuf], ys: &[PathBuf], gpu: &mut Session) -> R<(Vec<Tensor>, f32)> {
    let ins = xs.iter().map(|p| read_npy(p)).collect::<R<Vec<_>>>()?;
    let got = gpu.run(&ins)?;
    let mut worst = 0f32;
    for (i, (y, p)) in got.iter().zip(ys).enumerate() {
        let want = read_npy(p)?;
        if y.shape != want.shape {
            return Err(format!(
                "output {i} shape {:?}, ONNX Runtime {:?}",
                y.shape, want.shape
            )
            .into());
        }
        let scale = want.data.iter().fold(1f32, |a, v| a.max(v.abs()));
        let diff = y.data.iter().zip(&want.data).fold(0f32, |a, (p, q)| {
            let d = (p - q).abs();
            if d <= a {
                a
            } else if d.is_nan() {
                f32::INFINITY
            } else {
                d
            }
        });
        worst = worst.max(diff / scale);
    }
    if worst > ORT_TOL {
        return Err(format!(
            "differs from ONNX Runtime by {worst:.2e} (scaled; tolerance {ORT_TOL:.0e})"
        )
        .into());
    }
    Ok((ins, worst))
}

fn read_npy(p: &Path) -> R<Tensor> {
    let a: ndarray::ArrayD<f32> =
        ndarray_npy::read_npy(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let shape = a.shape().to_vec();
    Ok(Tensor::new(shape, a.iter().copied().collect())?)
}

/// Device buffers holding `ins` and room for every output of the session's binding.
struct DeviceIo {
    ins: Vec<CudaSlice<f32>>,
    outs: Vec<CudaSlice<f32>>,
    shapes: Vec<Vec<usize>>,
}

impl DeviceIo {
    fn new(s: &Session, ins: &[Tensor], st: &Arc<CudaStream>) -> R<Self> {
        let d_ins = ins
            .iter()
            .map(|t| st.clone_htod(&t.data))
            .collect::<Result<Vec<_>, _>>()?;
        let shapes = s.output_shapes(ins)?;
        let outs = shapes
            .iter()
            .map(|sh| st.alloc_zeros::<f32>(sh.iter().product::<usize>().max(1)))
            .collect::<Result<Vec<_>, _>>()?;
        st.synchronize()?;
        Ok(DeviceIo {
            ins: d_ins,
            outs,
            shapes: ins.iter().map(|t| t.shape.clone()).collect(),
        })
    }

    /// The inputs as device tensors and the outputs' addresses.
    fn addresses(&self, st: &Arc<CudaStream>) -> (Vec<DeviceTensor<'_>>, Vec<u64>) {
        let ins = self
            .ins
            .iter()
            .zip(&self.shapes)
            .map(|(b, shape)| DeviceTensor {
                ptr: b.device_ptr(st).0,
                shape,
            })
            .collect();
        let outs = self.outs.iter().map(|b| b.device_ptr(st).0).collect();
        (ins, outs)
    }

    fn run(&self, s: &mut Session, st: &Arc<CudaStream>) -> R<()> {
        let (ins, outs) = self.addresses(st);
        // SAFETY: every input buffer holds its tensor's elements, written and synchronised
        // in `new`; every output buffer has room for its output (sized from output_shapes);
        // all are distinct allocations on the model's device, alive for the whole call.
        unsafe { s.run_device(&ins, &outs)? };
        Ok(())
    }
}

/// Two device-memory runs (the second replays the graph captured for these addresses),
/// each bit-identical to the host-memory run.
fn device_io(gpu: &mut Session, ins: &[Tensor], st: &Arc<CudaStream>) -> R<()> {
    let want = gpu.run(ins)?.to_vec();
    let io = DeviceIo::new(gpu, ins, st)?;
    // launched, captured, replayed
    for round in 0..3 {
        io.run(gpu, st)?;
        for (i, (b, w)) in io.outs.iter().zip(&want).enumerate() {
            let got = st.clone_dtoh(b)?;
            if got != w.data {
                return Err(format!(
                    "device I/O run {round}: output {i} differs from the host run"
                )
                .into());
            }
        }
    }
    refused_addresses(gpu, &io, st)
}

/// Device addresses `run_device` must refuse before any kernel runs: a misaligned output,
/// an output overlapping an input, an output whose allocation is too short. (Were a check
/// missing, the kernels would write where they should not: the check fails either way.)
fn refused_addresses(gpu: &mut Session, io: &DeviceIo, st: &Arc<CudaStream>) -> R<()> {
    let (ins, outs) = io.addresses(st);
    let n = io.outs[0].len() as u64;
    let cases = [
        ("misaligned", outs[0] + 2, "aligned"),
        ("on an input", ins.first().map_or(0, |t| t.ptr), "overlap"),
        ("too short", outs[0] + 4 * (n - 1), "allocation ends"),
    ];
    for (what, ptr, want) in cases {
        if (what == "too short" && n < 2) || ptr == 0 {
            continue;
        }
        let mut bad = outs.clone();
        bad[0] = ptr;
        // SAFETY: nothing else is running on these buffers; the addresses are wrong on
        // purpose and the runtime must refuse them before launching (see above)
        match unsafe { gpu.run_device(&ins, &bad) } {
            Err(e) if e.to_string().contains(want) => {}
            Err(e) => return Err(format!("output {what}: unexpected error: {e}").into()),
            Ok(()) => return Err(format!("output {what}: run_device accepted it").into()),
        }
    }
    Ok(())
}

/// Median seconds of `f` over `iters` calls after `iters / 10 + 3` warm-up calls.
fn median_s(iters: usize, mut f: impl FnMut() -> R<()>) -> R<f64> {
    for _ in 0..iters / 10 + 3 {
        f()?;
    }
    let mut t = Vec::with_capacity(iters);
    for _ in 0..iters {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn bench(dir: &Path, opts: &LoadOptions, st: &Arc<CudaStream>) -> R<()> {
    println!(
        "\nbenchmark ({}): median of device-memory runs, each to completion",
        dir.display()
    );
    for (name, path) in artifacts(dir)? {
        let model = Model::load_with(&path, opts)?;
        let mut s = model.session(1)?;
        for batch in [1, 8] {
            let ins = random_inputs(&model, batch, 7);
            let io = DeviceIo::new(&s, &ins, st)?;
            let t = median_s(200, || io.run(&mut s, st))?;
            let line = if name.starts_with("se_") {
                se_line(&ins[0], t, st)?
            } else {
                format!("{:.3} ms", t * 1e3)
            };
            println!("{name:>24} batch {batch}: {line}");
        }
    }
    Ok(())
}

/// The SE block's time against its memory traffic (read X to pool, read X to scale, write
/// Y: 3|X|) at the device-to-device copy bandwidth measured now for the same bytes.
fn se_line(x: &Tensor, t: f64, st: &Arc<CudaStream>) -> R<String> {
    let n = x.data.len();
    let src = st.clone_htod(&x.data)?;
    let mut dst = st.alloc_zeros::<f32>(n)?;
    let copy = median_s(200, || {
        st.memcpy_dtod(&src, &mut dst)?;
        Ok(st.synchronize()?)
    })?;
    let bytes = (n * 4) as f64;
    let copy_bw = 2.0 * bytes / copy;
    let se_bw = 3.0 * bytes / t;
    Ok(format!(
        "{:.1} us, {:.0} GB/s = {:.2} of copy ({:.0} GB/s, {:.1} us for |X|)",
        t * 1e6,
        se_bw / 1e9,
        se_bw / copy_bw,
        copy_bw / 1e9,
        copy * 1e6
    ))
}
