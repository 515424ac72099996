//! The model: a checked artifact, its loaded code, and execution.
use crate::barrier::{barrier_wait, SpinBarrier};
use crate::cpu::{self, Code};
use crate::RuntimeError;
use secc_artifact::{Artifact, BufferKind, DimDecl, Manifest};
use std::ffi::c_void;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Element type of a [`Tensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// float32: the elements are in `data` (every input, most outputs)
    F32,
    /// int64: the elements are in `ints` (outputs ONNX defines as int64: MaxPool indices,
    /// shapes a model returns)
    I64,
}

/// A dense row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// extents
    pub shape: Vec<usize>,
    /// float32 elements (empty for an int64 tensor)
    pub data: Vec<f32>,
    /// int64 elements (empty for a float32 tensor)
    pub ints: Vec<i64>,
    /// which of the two holds the elements
    pub dtype: DType,
}

impl Tensor {
    /// A tensor; errors if `data` does not match `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, RuntimeError> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(RuntimeError::Input(format!(
                "shape {shape:?} needs {n} values, got {}",
                data.len()
            )));
        }
        Ok(Tensor {
            shape,
            data,
            ints: vec![],
            dtype: DType::F32,
        })
    }

    /// A tensor holding a copy of `data` in a buffer the runtime allocated (huge pages for
    /// large tensors, which streams markedly faster than a 4 KiB-page `Vec`).
    pub fn from_slice(shape: Vec<usize>, data: &[f32]) -> Result<Self, RuntimeError> {
        Self::new(shape, crate::mem::copied(data)?)
    }

    /// A zero tensor allocated by the runtime.
    pub fn zeros(shape: Vec<usize>) -> Result<Self, RuntimeError> {
        let n = shape.iter().product();
        Ok(Tensor {
            shape,
            data: crate::mem::zeroed(n)?,
            ints: vec![],
            dtype: DType::F32,
        })
    }
}

/// Timing of repeated runs (`secc run --bench`).
#[derive(Debug, Clone)]
pub struct RunStats {
    /// per-run latencies in microseconds, sorted
    pub latencies_us: Vec<f64>,
}

impl RunStats {
    /// Percentile `p` in [0, 100] (nearest rank).
    pub fn percentile(&self, p: f64) -> f64 {
        let v = &self.latencies_us;
        if v.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[i.min(v.len() - 1)]
    }
}

/// A read-only description of a loaded model (for `inspect`).
pub struct ModelInfo<'a> {
    /// the manifest
    pub manifest: &'a Manifest,
}

/// Memory for one batch size: offsets of temporaries in one arena.
struct Bound {
    syms: Vec<u64>,
    /// arena offset (elements) of each Temp buffer
    offsets: Vec<usize>,
    arena: Vec<f32>,
}

/// Raw pointers handed to the pool threads.
struct Frame {
    args: Vec<Vec<*mut f32>>,
    syms: Vec<i64>,
}
// SAFETY: the pointers refer to buffers owned by `Model::run`'s frame (inputs, outputs, the
// arena, the weights), all alive until every pool thread has returned; kernels write only
// their declared output buffers, which the memory plan keeps disjoint from everything
// live at the same time.
unsafe impl Send for Frame {}
// SAFETY: as above; threads only read the Frame itself.
unsafe impl Sync for Frame {}

/// A loaded, runnable model.
pub struct Model {
    artifact: Artifact,
    weights: Vec<f32>,
    code: Code,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
    bound: Mutex<Option<Bound>>,
}

impl Model {
    /// Loads an artifact with as many threads as the machine has cores.
    ///
    /// Trust model: an artifact contains native code, which runs in this process. Loading
    /// first verifies the format version, every checksum, the target triple and the CPU
    /// features, so damaged or foreign files are rejected before any of their code is
    /// mapped; it cannot make a deliberately malicious file safe, so load only artifacts
    /// produced by secc, as you would only load shared libraries you trust.
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let t = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::load_with_threads(path, t)
    }

    /// Loads an artifact and runs it with `threads` threads.
    pub fn load_with_threads(path: &Path, threads: usize) -> Result<Self, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|e| RuntimeError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_bytes(bytes, threads)
    }

    /// Loads an artifact from memory.
    pub fn from_bytes(bytes: Vec<u8>, threads: usize) -> Result<Self, RuntimeError> {
        let artifact = Artifact::parse(bytes)?;
        let m = &artifact.manifest;
        let t = m
            .targets
            .first()
            .ok_or_else(|| RuntimeError::Target("artifact names no target".into()))?;
        cpu::check_target(t)?;
        let so = artifact
            .section("cpu_code")
            .ok_or_else(|| RuntimeError::Load("artifact has no cpu_code section".into()))?;
        let wbytes = artifact.section("weights").unwrap_or(&[]);
        let weights: Vec<f32> = crate::mem::copied(
            &wbytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<f32>>(),
        )?;
        // every weight buffer must lie inside the weights section
        for (i, b) in m.buffers.iter().enumerate() {
            if let BufferKind::Weight { offset } = b.kind {
                let n: u64 = b
                    .shape
                    .iter()
                    .map(|d| d.eval(&[]).unwrap_or(u64::MAX))
                    .product();
                if offset % 4 != 0 || offset / 4 + n > weights.len() as u64 {
                    return Err(RuntimeError::Load(format!(
                        "weight buffer {i} lies outside the weights section"
                    )));
                }
            }
        }
        let names: Vec<String> = m.kernels.iter().map(|k| k.name.clone()).collect();
        let code = cpu::load(so, &names)?;
        let threads = threads.max(1);
        let pool = if threads > 1 {
            // The calling thread runs share 0, so threads - 1 workers would do; one more idle
            // worker measured faster (25 vs 40 us on a 64x56x56 SE block): an awake spare
            // picks up the next run's share without a futex wake.
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .map_err(|e| RuntimeError::Load(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Model {
            artifact,
            weights,
            code,
            threads,
            pool,
            bound: Mutex::new(None),
        })
    }

    /// The manifest.
    pub fn info(&self) -> ModelInfo<'_> {
        ModelInfo {
            manifest: &self.artifact.manifest,
        }
    }

    /// Thread count.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Input names in order.
    pub fn input_names(&self) -> Vec<&str> {
        self.artifact
            .manifest
            .inputs
            .iter()
            .map(|i| i.name.as_str())
            .collect()
    }

    /// Output names in order.
    pub fn output_names(&self) -> Vec<&str> {
        self.artifact
            .manifest
            .outputs
            .iter()
            .map(|i| i.name.as_str())
            .collect()
    }

    fn shape_str(&self, dims: &[DimDecl]) -> String {
        let s: Vec<String> = dims
            .iter()
            .map(|d| d.display(&self.artifact.manifest.symbols))
            .collect();
        format!("[{}]", s.join(", "))
    }

    /// Binds symbols from input shapes, checking each dimension.
    fn bind(&self, inputs: &[&Tensor]) -> Result<Vec<u64>, RuntimeError> {
        let m = &self.artifact.manifest;
        if inputs.len() != m.inputs.len() {
            return Err(RuntimeError::Input(format!(
                "model has {} input(s) ({}), got {}",
                m.inputs.len(),
                self.input_names().join(", "),
                inputs.len()
            )));
        }
        let mut syms: Vec<Option<u64>> = vec![None; m.symbols.len()];
        for (io, t) in m.inputs.iter().zip(inputs) {
            let decl = &m.buffers[io.buffer as usize].shape;
            let bad = || {
                RuntimeError::Input(format!(
                    "input {:?}: expected shape {}, got {:?}",
                    io.name,
                    self.shape_str(decl),
                    t.shape
                ))
            };
            if decl.len() != t.shape.len() {
                return Err(bad());
            }
            for (d, &v) in decl.iter().zip(&t.shape) {
                match *d {
                    DimDecl::Known(k) if k as usize == v => {}
                    DimDecl::Sym { sym, coeff } if v > 0 && (v as u64).is_multiple_of(coeff) => {
                        let b = v as u64 / coeff;
                        match syms[sym as usize] {
                            Some(o) if o != b => {
                                return Err(RuntimeError::Input(format!(
                                    "input {:?}: dimension {:?} is {b} here but {o} in an earlier input",
                                    io.name, m.symbols[sym as usize]
                                )))
                            }
                            _ => syms[sym as usize] = Some(b),
                        }
                    }
                    _ => return Err(bad()),
                }
            }
            if t.dtype != DType::F32 {
                return Err(RuntimeError::Input(format!(
                    "input {:?}: is int64; model inputs are float32",
                    io.name
                )));
            }
            if t.data.len() != t.shape.iter().product::<usize>() {
                return Err(RuntimeError::Input(format!(
                    "input {:?}: data length does not match its shape",
                    io.name
                )));
            }
        }
        syms.into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.ok_or_else(|| {
                    RuntimeError::Input(format!(
                        "dimension {:?} is not determined by any input",
                        m.symbols[i]
                    ))
                })
            })
            .collect()
    }

    /// Plans temporaries for a binding: buffers live from the kernel that first writes them
    /// to the last kernel that reads them; greedy first-fit into one arena.
    fn plan(&self, syms: &[u64]) -> Result<Bound, RuntimeError> {
        let plan = self.artifact.manifest.memory_plan(syms);
        Ok(Bound {
            syms: syms.to_vec(),
            offsets: plan.offsets,
            arena: crate::mem::zeroed(plan.arena_floats + 16)?,
        })
    }

    /// Runs the model on inputs given in order; returns outputs in order.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        self.run_refs(&refs)
    }

    /// Runs the model on named inputs (any order).
    pub fn run_named(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>, RuntimeError> {
        let m = &self.artifact.manifest;
        for (n, _) in inputs {
            if !m.inputs.iter().any(|i| i.name == *n) {
                return Err(RuntimeError::Input(format!(
                    "model has no input named {n:?} (inputs: {})",
                    self.input_names().join(", ")
                )));
            }
        }
        let refs: Vec<&Tensor> = m
            .inputs
            .iter()
            .map(|i| {
                inputs
                    .iter()
                    .find(|(n, _)| *n == i.name)
                    .map(|x| x.1)
                    .ok_or_else(|| RuntimeError::Input(format!("input {:?} is missing", i.name)))
            })
            .collect::<Result<_, _>>()?;
        self.run_refs(&refs)
    }

    /// Runs `iters` times after `warmup` runs and reports latencies (the run alone: no load,
    /// no file I/O).
    pub fn bench(
        &self,
        inputs: &[Tensor],
        warmup: usize,
        iters: usize,
    ) -> Result<RunStats, RuntimeError> {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let mut outs = self.run_refs(&refs)?;
        for _ in 0..warmup {
            self.run_into_refs(&refs, &mut outs)?;
        }
        let mut v = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            self.run_into_refs(&refs, &mut outs)?;
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        v.sort_by(f64::total_cmp);
        Ok(RunStats { latencies_us: v })
    }

    /// Per-kernel time: runs `iters` times after `warmup` runs and returns, for every kernel
    /// in execution order, its name, kind, ONNX origin and mean wall time in microseconds
    /// (measured on thread 0 from the kernel's start to the barrier after it, so it includes
    /// waiting for the slowest thread).
    pub fn profile(
        &self,
        inputs: &[Tensor],
        warmup: usize,
        iters: usize,
    ) -> Result<Vec<(String, String, String, f64)>, RuntimeError> {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let mut outs = self.run_refs(&refs)?;
        for _ in 0..warmup {
            self.run_into_refs(&refs, &mut outs)?;
        }
        let m = &self.artifact.manifest;
        let nanos: Vec<AtomicU64> = m.kernels.iter().map(|_| AtomicU64::new(0)).collect();
        for _ in 0..iters.max(1) {
            self.run_impl(&refs, &mut outs, Some(&nanos))?;
        }
        Ok(m.kernels
            .iter()
            .zip(&nanos)
            .map(|(k, t)| {
                let us = t.load(Ordering::Relaxed) as f64 / 1e3 / iters.max(1) as f64;
                (k.name.clone(), k.kind.clone(), k.origin.clone(), us)
            })
            .collect())
    }

    /// Runs the model writing into `outputs`, reusing their allocations when their shapes
    /// already match (as a serving loop does); otherwise they are resized.
    pub fn run_into(
        &self,
        inputs: &[Tensor],
        outputs: &mut Vec<Tensor>,
    ) -> Result<(), RuntimeError> {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        self.run_into_refs(&refs, outputs)
    }

    fn run_refs(&self, inputs: &[&Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
        let mut outs = Vec::new();
        self.run_into_refs(inputs, &mut outs)?;
        Ok(outs)
    }

    fn run_into_refs(
        &self,
        inputs: &[&Tensor],
        outputs: &mut Vec<Tensor>,
    ) -> Result<(), RuntimeError> {
        self.run_impl(inputs, outputs, None)
    }

    fn run_impl(
        &self,
        inputs: &[&Tensor],
        outputs: &mut Vec<Tensor>,
        nanos: Option<&[AtomicU64]>,
    ) -> Result<(), RuntimeError> {
        let m = &self.artifact.manifest;
        let syms = self.bind(inputs)?;
        let mut guard = self
            .bound
            .lock()
            .map_err(|_| RuntimeError::Load("a previous run panicked".into()))?;
        if guard.as_ref().map(|b| b.syms != syms).unwrap_or(true) {
            *guard = Some(self.plan(&syms)?);
        }
        let bound = guard.as_mut().expect("invariant: just planned");
        outputs.resize_with(m.outputs.len(), || Tensor {
            shape: vec![],
            data: vec![],
            ints: vec![],
            dtype: DType::F32,
        });
        for (o, t) in m.outputs.iter().zip(outputs.iter_mut()) {
            let b = &m.buffers[o.buffer as usize];
            let shape: Vec<usize> = b
                .shape
                .iter()
                .map(|d| d.eval(&syms).unwrap_or(0) as usize)
                .collect();
            let n: usize = shape.iter().product();
            if b.dtype == "i64" {
                t.dtype = DType::I64;
                t.data = vec![];
                t.ints.resize(n, 0);
            } else {
                t.dtype = DType::F32;
                t.ints = vec![];
                if t.data.len() != n {
                    t.data = crate::mem::zeroed(n)?;
                }
            }
            t.shape = shape;
        }
        let arena = bound.arena.as_mut_ptr();
        let weights = self.weights.as_ptr() as *mut f32;
        let ptr_of = |b: u32, outputs: &mut [Tensor]| -> *mut f32 {
            let b = match m.buffers[b as usize].kind {
                BufferKind::Alias { of } => of,
                _ => b,
            };
            match m.buffers[b as usize].kind {
                BufferKind::Input { index } => inputs[index as usize].data.as_ptr() as *mut f32,
                BufferKind::Output { index } => {
                    let t = &mut outputs[index as usize];
                    match t.dtype {
                        DType::F32 => t.data.as_mut_ptr(),
                        // the kernels write i64 through this pointer (the ABI passes `float*`)
                        DType::I64 => t.ints.as_mut_ptr() as *mut f32,
                    }
                }
                BufferKind::Weight { offset } => {
                    // SAFETY: weight offsets were checked against the weights section at load.
                    unsafe { weights.add(offset as usize / 4) }
                }
                BufferKind::Temp => {
                    // SAFETY: the planner sized the arena to cover every temp's offset + size.
                    unsafe { arena.add(bound.offsets[b as usize]) }
                }
                BufferKind::Alias { .. } => unreachable!("aliases resolve to a root"),
            }
        };
        let frame = Frame {
            args: m
                .kernels
                .iter()
                .map(|k| k.args.iter().map(|&a| ptr_of(a, outputs)).collect())
                .collect(),
            syms: syms.iter().map(|&s| s as i64).collect(),
        };
        let barrier = SpinBarrier::new(self.threads);
        let n = self.threads as i64;
        let kernels = &self.code.kernels;
        let frame = &frame;
        let last = kernels.len().saturating_sub(1);
        let work = |tid: usize| {
            for (k, f) in kernels.iter().enumerate() {
                let t0 = (tid == 0 && nanos.is_some()).then(Instant::now);
                // SAFETY: `f` has the KernelFn signature; its argument array holds one valid
                // pointer per declared buffer of the sizes the kernel was compiled for (the
                // symbols were bound and checked above); the barrier outlives the call.
                unsafe {
                    f(
                        frame.args[k].as_ptr(),
                        frame.syms.as_ptr(),
                        tid as i64,
                        n,
                        barrier_wait,
                        &barrier as *const SpinBarrier as *mut c_void,
                    );
                }
                if k != last || nanos.is_some() {
                    barrier.wait();
                }
                if let (Some(t0), Some(ns)) = (t0, nanos) {
                    ns[k].fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
            }
        };
        match &self.pool {
            // Every share must run concurrently (kernels meet at barriers): a worker running a
            // share is blocked in it until all shares arrive, so it cannot take a second one,
            // and the pool has at least threads - 1 workers; the caller runs share 0.
            Some(pool) => pool.in_place_scope(|s| {
                for t in 1..self.threads {
                    let work = &work;
                    s.spawn(move |_| work(t));
                }
                work(0);
            }),
            None => work(0),
        }
        Ok(())
    }
}
