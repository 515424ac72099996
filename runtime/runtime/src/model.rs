//! The model: a checked artifact, its loaded code, and execution.
use crate::cpu::{self, Code};
use crate::exec::Run;
use crate::RuntimeError;
use secc_artifact::{Artifact, BufferKind, DimDecl, Manifest};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
        let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if n != Some(data.len()) {
            return Err(RuntimeError::Input(format!(
                "shape {shape:?} does not hold the {} values given",
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
        let n = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| RuntimeError::Memory(format!("a {shape:?} tensor does not fit")))?;
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

/// A loaded, runnable model.
pub struct Model {
    artifact: Artifact,
    weights: Vec<f32>,
    code: Code,
    threads: usize,
    /// barrier waiters spin before parking (not when threads exceed the usable cores)
    spin: bool,
    pool: Option<rayon::ThreadPool>,
    bound: Mutex<Option<Bound>>,
}

impl Model {
    /// Loads an artifact with one thread per core this process may use
    /// ([`available_cores`](crate::available_cores)).
    ///
    /// Trust model: an artifact contains native code, which runs in this process. Loading
    /// first verifies the format version, every checksum, the target triple and the CPU
    /// features, so damaged or foreign files are rejected before any of their code is
    /// mapped; it cannot make a deliberately malicious file safe, so load only artifacts
    /// produced by secc, as you would only load shared libraries you trust.
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        Self::load_with_threads(path, crate::available_cores())
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
        let artifact = Self::check(bytes)?;
        let m = &artifact.manifest;
        let so = artifact.section("cpu_code").unwrap_or(&[]);
        let wbytes = artifact.section("weights").unwrap_or(&[]);
        let weights: Vec<f32> = crate::mem::copied(
            &wbytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<f32>>(),
        )?;
        let names: Vec<String> = m.kernels.iter().map(|k| k.name.clone()).collect();
        let code = cpu::load(so, &names)?;
        let wcrc = m.section("weights").map(|s| s.crc32).unwrap_or(0);
        if secc_artifact::layout_digest(m, wcrc)? != code.digest {
            return Err(RuntimeError::Load(
                "the manifest or weights do not match the code they were compiled with \
                 (the artifact was edited after compilation); recompile the model"
                    .into(),
            ));
        }
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
            spin: threads <= crate::available_cores(),
            pool,
            bound: Mutex::new(None),
        })
    }

    /// Every check loading makes before the code is mapped: the format (version, checksums,
    /// manifest consistency), the target against this host, the code section's presence,
    /// and every weight buffer inside the weights section. Maps and runs nothing (the
    /// `artifact_load` fuzz target drives it). Loading then also checks the code's layout
    /// digest, which needs the code mapped.
    pub fn check(bytes: Vec<u8>) -> Result<Artifact, RuntimeError> {
        let artifact = Artifact::parse(bytes)?;
        let m = &artifact.manifest;
        let t = m
            .targets
            .first()
            .ok_or_else(|| RuntimeError::Target("artifact names no target".into()))?;
        cpu::check_target(t)?;
        if artifact.section("cpu_code").is_none() {
            return Err(RuntimeError::Load(
                "artifact has no cpu_code section".into(),
            ));
        }
        let wfloats = artifact.section("weights").map_or(0, |w| w.len() / 4) as u64;
        for (i, b) in m.buffers.iter().enumerate() {
            if let BufferKind::Weight { offset } = b.kind {
                let end = DimDecl::elements(&b.shape, &[]).and_then(|n| n.checked_add(offset / 4));
                if offset % 4 != 0 || end.is_none_or(|e| e > wfloats) {
                    return Err(RuntimeError::Load(format!(
                        "weight buffer {i} lies outside the weights section"
                    )));
                }
            }
        }
        Ok(artifact)
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
            let n = DimDecl::elements(&b.shape, &syms)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    RuntimeError::Memory(format!("output {:?} is too large for memory", o.name))
                })?;
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
        let args = m
            .kernels
            .iter()
            .map(|k| k.args.iter().map(|&a| ptr_of(a, outputs)).collect())
            .collect();
        let run = Arc::new(Run::new(
            self.code.kernels.clone(),
            m.kernels.iter().map(|k| k.barrier).collect(),
            args,
            syms.iter().map(|&s| s as i64).collect(),
            self.threads,
            self.spin,
            nanos.is_some(),
        ));
        run.execute(self.pool.as_ref());
        if let (Some(out), Some(got)) = (nanos, &run.nanos) {
            for (o, g) in out.iter().zip(got) {
                o.fetch_add(g.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
