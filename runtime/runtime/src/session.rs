//! A session: one caller's state for running a [`Model`]: its thread pool, its arena of
//! temporaries (planned per symbol binding) and its output buffers. Sessions on one model
//! share the code and the weights and run concurrently; a session is used by one thread at
//! a time (`&mut self`), and may move between threads.
use crate::exec::Run;
use crate::tensor::AsTensorView;
use crate::{DType, DeviceTensor, Model, RuntimeError, Tensor, TensorView};
use secc_artifact::{BufferKind, DimDecl};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

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

/// One kernel's share of a run ([`Session::profile`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTime {
    /// the kernel's symbol name
    pub name: String,
    /// its op kind (`conv2d`, `squeeze_excite`, ...)
    pub kind: String,
    /// the ONNX node(s) it came from
    pub origin: String,
    /// mean wall time per run in microseconds, measured on the calling thread from the
    /// kernel's start until its last share finished
    pub mean_us: f64,
}

/// Memory plans kept per session: a server alternates between a few input sizes, and each
/// size's plan is computed once; the least recently used plan beyond this is dropped.
pub const PLAN_CACHE: usize = 8;

/// The memory plan of one symbol binding: offsets of temporaries in the arena.
pub(crate) struct Bound {
    pub syms: Vec<u64>,
    /// arena offset (elements) of each Temp buffer
    pub offsets: Vec<usize>,
    /// elements of arena the plan needs
    pub arena_floats: usize,
}

/// Where a session runs the kernels.
enum Exec {
    /// on the calling thread and a pool, temporaries in one host arena
    Cpu {
        /// barrier waiters spin before parking (not when threads exceed the usable cores)
        spin: bool,
        pool: Option<rayon::ThreadPool>,
        /// one arena for every plan: grown to the largest binding run so far, never shrunk
        arena: crate::mem::Aligned,
    },
    /// on the model's GPU, through the session's stream
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::Exec),
}

/// A shape's extents under a binding that [`Manifest::check_binding`] accepted (so every
/// one is defined).
///
/// [`Manifest::check_binding`]: secc_artifact::Manifest::check_binding
fn extents(shape: &[DimDecl], syms: &[u64]) -> Vec<usize> {
    shape
        .iter()
        .map(|d| d.eval(syms).unwrap_or(0) as usize)
        .collect()
}

/// The pool of a CPU session with `threads` threads (none for one thread).
fn cpu_pool(threads: usize) -> Result<Option<rayon::ThreadPool>, RuntimeError> {
    if threads <= 1 {
        return Ok(None);
    }
    // The calling thread runs share 0, so threads - 1 workers would do; one more idle
    // worker measured faster (25 vs 40 us on a 64x56x56 SE block): an awake spare picks up
    // the next run's share without a futex wake.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map(Some)
        .map_err(|e| RuntimeError::Load(format!("cannot start threads: {e}")))
}

/// A caller's handle for running a model; see the module docs.
pub struct Session {
    /// declared (so dropped) before `model`: a CUDA session's graphs and buffers go before
    /// the module and weights they refer to, when this session holds the last handle
    exec: Exec,
    model: Model,
    threads: usize,
    /// plans by binding, most recently used last (at most [`PLAN_CACHE`])
    plans: Vec<Bound>,
    outputs: Vec<Tensor>,
}

impl Session {
    /// A session on `model` with `threads` threads (0: one per usable core). A session on
    /// a CUDA model runs on the model's GPU through a stream of its own, whatever
    /// `threads` says.
    pub fn new(model: Model, threads: usize) -> Result<Self, RuntimeError> {
        let threads = match threads {
            0 => crate::available_cores(),
            t => t,
        };
        let exec = match &model.inner.code {
            crate::model::Code::Cpu(_) => Exec::Cpu {
                spin: threads <= crate::available_cores(),
                pool: cpu_pool(threads)?,
                arena: crate::mem::Aligned::default(),
            },
            #[cfg(feature = "cuda")]
            crate::model::Code::Cuda(p) => Exec::Cuda(crate::cuda::Exec::new(p)?),
        };
        Ok(Session {
            model,
            threads,
            exec,
            plans: Vec::new(),
            outputs: Vec::new(),
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Thread count.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs the model on inputs given in the model's input order ([`Model::inputs`]), as
    /// [`TensorView`]s (borrowed, not copied) or [`Tensor`]s. Returns the outputs, in order;
    /// they stay readable in place ([`Session::outputs`]) until the next run.
    pub fn run<T: AsTensorView>(&mut self, inputs: &[T]) -> Result<&[Tensor], RuntimeError> {
        let views: Vec<TensorView<'_>> = inputs.iter().map(|t| t.as_view()).collect();
        self.run_views(&views, None)?;
        Ok(&self.outputs)
    }

    /// Runs the model on named inputs, in any order.
    pub fn run_named<T: AsTensorView>(
        &mut self,
        inputs: &[(&str, T)],
    ) -> Result<&[Tensor], RuntimeError> {
        let model = &self.model;
        for (n, _) in inputs {
            if !model.inputs().iter().any(|i| i.name == *n) {
                return Err(RuntimeError::Input(format!(
                    "model has no input named {n:?} (inputs: {})",
                    model.input_names().join(", ")
                )));
            }
        }
        let views: Vec<TensorView<'_>> = model
            .inputs()
            .iter()
            .map(|i| {
                inputs
                    .iter()
                    .find(|(n, _)| *n == i.name)
                    .map(|x| x.1.as_view())
                    .ok_or_else(|| RuntimeError::Input(format!("input {:?} is missing", i.name)))
            })
            .collect::<Result<_, _>>()?;
        self.run_views(&views, None)?;
        Ok(&self.outputs)
    }

    /// The outputs of the last run, in order (empty before the first).
    pub fn outputs(&self) -> &[Tensor] {
        &self.outputs
    }

    /// Moves the last run's outputs out of the session (the next run allocates new ones).
    pub fn take_outputs(&mut self) -> Vec<Tensor> {
        std::mem::take(&mut self.outputs)
    }

    /// Runs `iters` times after `warmup` runs and reports latencies (the run alone: no load,
    /// no file I/O).
    pub fn bench<T: AsTensorView>(
        &mut self,
        inputs: &[T],
        warmup: usize,
        iters: usize,
    ) -> Result<RunStats, RuntimeError> {
        let views: Vec<TensorView<'_>> = inputs.iter().map(|t| t.as_view()).collect();
        for _ in 0..warmup.max(1) {
            self.run_views(&views, None)?;
        }
        let mut v = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            self.run_views(&views, None)?;
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        v.sort_by(f64::total_cmp);
        Ok(RunStats { latencies_us: v })
    }

    /// Per-kernel time: runs `iters` times after `warmup` runs and returns every kernel in
    /// execution order with its mean wall time.
    pub fn profile<T: AsTensorView>(
        &mut self,
        inputs: &[T],
        warmup: usize,
        iters: usize,
    ) -> Result<Vec<KernelTime>, RuntimeError> {
        let views: Vec<TensorView<'_>> = inputs.iter().map(|t| t.as_view()).collect();
        for _ in 0..warmup.max(1) {
            self.run_views(&views, None)?;
        }
        let m = self.model.manifest();
        let nanos: Vec<AtomicU64> = m.kernels.iter().map(|_| AtomicU64::new(0)).collect();
        for _ in 0..iters.max(1) {
            self.run_views(&views, Some(&nanos))?;
        }
        let m = self.model.manifest();
        Ok(m.kernels
            .iter()
            .zip(&nanos)
            .map(|(k, t)| KernelTime {
                name: k.name.clone(),
                kind: k.kind.clone(),
                origin: k.origin.clone(),
                mean_us: t.load(Ordering::Relaxed) as f64 / 1e3 / iters.max(1) as f64,
            })
            .collect())
    }

    /// Binds symbols from the inputs, checking each against its declaration.
    fn bind(&self, inputs: &[TensorView<'_>]) -> Result<Vec<u64>, RuntimeError> {
        let m = self.model.manifest();
        for (io, t) in m.inputs.iter().zip(inputs) {
            if t.data().len() != t.shape().iter().product::<usize>() {
                return Err(RuntimeError::Input(format!(
                    "input {:?}: {} values given for shape {:?} (model inputs are float32)",
                    io.name,
                    t.data().len(),
                    t.shape()
                )));
            }
        }
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
        self.bind_shapes(&shapes)
    }

    /// Binds symbols from input shapes, checking each shape against its declaration.
    fn bind_shapes(&self, shapes: &[&[usize]]) -> Result<Vec<u64>, RuntimeError> {
        let model = &self.model;
        let m = model.manifest();
        if shapes.len() != m.inputs.len() {
            return Err(RuntimeError::Input(format!(
                "model has {} input(s) ({}), got {}",
                m.inputs.len(),
                model.input_names().join(", "),
                shapes.len()
            )));
        }
        let mut syms: Vec<Option<u64>> = vec![None; m.symbols.len()];
        for ((io, info), &shape) in m.inputs.iter().zip(model.inputs()).zip(shapes) {
            let decl = &m.buffers[io.buffer as usize].shape;
            let bad = || {
                let want: Vec<String> = info.shape.iter().map(|d| d.to_string()).collect();
                RuntimeError::Input(format!(
                    "input {:?}: expected shape [{}], got {:?}",
                    io.name,
                    want.join(", "),
                    shape
                ))
            };
            if decl.len() != shape.len() {
                return Err(bad());
            }
            for (d, &v) in decl.iter().zip(shape) {
                match d {
                    DimDecl::Known(k) if *k as usize == v => {}
                    DimDecl::Sym { sym, coeff } if v > 0 && (v as u64).is_multiple_of(*coeff) => {
                        let b = v as u64 / coeff;
                        match syms[*sym as usize] {
                            Some(o) if o != b => {
                                return Err(RuntimeError::Input(format!(
                                    "input {:?}: dimension {:?} is {b} here but {o} in an earlier input",
                                    io.name, m.symbols[*sym as usize]
                                )))
                            }
                            _ => syms[*sym as usize] = Some(b),
                        }
                    }
                    // checked once every symbol is bound
                    DimDecl::Expr { .. } => {}
                    _ => return Err(bad()),
                }
            }
        }
        let syms: Vec<u64> = syms
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.ok_or_else(|| {
                    RuntimeError::Input(format!(
                        "dimension {:?} is not determined by any input",
                        m.symbols[i]
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        for ((io, info), &shape) in m.inputs.iter().zip(model.inputs()).zip(shapes) {
            let decl = &m.buffers[io.buffer as usize].shape;
            for (k, (d, &v)) in decl.iter().zip(shape).enumerate() {
                if matches!(d, DimDecl::Expr { .. }) && d.eval(&syms) != Some(v as u64) {
                    return Err(RuntimeError::Input(format!(
                        "input {:?}: dimension {k} must be {} = {}, got {v}",
                        io.name,
                        info.shape[k],
                        d.eval(&syms).map_or("undefined".into(), |e| e.to_string())
                    )));
                }
            }
        }
        Ok(syms)
    }

    /// Binds the symbols and, for a binding with no cached plan, checks the manifest's
    /// constraints and every buffer's size (a cached binding passed them when planned, so
    /// a serving loop does not re-check every buffer on every call).
    fn checked(&self, inputs: &[TensorView<'_>]) -> Result<Vec<u64>, RuntimeError> {
        let syms = self.bind(inputs)?;
        self.check_new(syms)
    }

    /// [`Session::checked`]'s checks of a binding with no cached plan.
    fn check_new(&self, syms: Vec<u64>) -> Result<Vec<u64>, RuntimeError> {
        if !self.plans.iter().any(|b| b.syms == syms) {
            self.model
                .manifest()
                .check_binding(&syms)
                .map_err(RuntimeError::Input)?;
        }
        Ok(syms)
    }

    /// Shapes the output buffers for a binding, reusing their allocations when the sizes
    /// already match (as a serving loop does).
    fn shape_outputs(&mut self, syms: &[u64]) -> Result<(), RuntimeError> {
        let m = self.model.manifest();
        self.outputs.resize_with(m.outputs.len(), Tensor::empty);
        for (o, t) in m.outputs.iter().zip(self.outputs.iter_mut()) {
            let b = &m.buffers[o.buffer as usize];
            let n = DimDecl::elements(&b.shape, syms)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    RuntimeError::Memory(format!("output {:?} is too large for memory", o.name))
                })?;
            t.shape = extents(&b.shape, syms);
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
        }
        Ok(())
    }

    /// The shape every output will have when the model runs on `inputs` (checked as `run`
    /// checks them), so a caller can allocate buffers for [`Session::run_into`].
    pub fn output_shapes<T: AsTensorView>(
        &self,
        inputs: &[T],
    ) -> Result<Vec<Vec<usize>>, RuntimeError> {
        let views: Vec<TensorView<'_>> = inputs.iter().map(|t| t.as_view()).collect();
        let syms = self.checked(&views)?;
        let m = self.model.manifest();
        Ok(m.outputs
            .iter()
            .map(|o| extents(&m.buffers[o.buffer as usize].shape, &syms))
            .collect())
    }

    /// Runs the model writing each output straight into the caller's buffer (one per
    /// output, in order, each exactly its output's element count: see
    /// [`Session::output_shapes`]), so nothing is allocated or copied per run. float32
    /// outputs only; a model with an int64 output runs with [`Session::run`].
    pub fn run_into<T: AsTensorView>(
        &mut self,
        inputs: &[T],
        outputs: &mut [&mut [f32]],
    ) -> Result<(), RuntimeError> {
        let views: Vec<TensorView<'_>> = inputs.iter().map(|t| t.as_view()).collect();
        let syms = self.checked(&views)?;
        let m = self.model.manifest();
        if outputs.len() != m.outputs.len() {
            return Err(RuntimeError::Input(format!(
                "model has {} output(s), got {} buffer(s)",
                m.outputs.len(),
                outputs.len()
            )));
        }
        for (o, buf) in m.outputs.iter().zip(outputs.iter()) {
            let b = &m.buffers[o.buffer as usize];
            if b.dtype == "i64" {
                return Err(RuntimeError::Input(format!(
                    "output {:?} is int64: run this model with Session::run",
                    o.name
                )));
            }
            let n = DimDecl::elements(&b.shape, &syms);
            if n != Some(buf.len() as u64) {
                return Err(RuntimeError::Input(format!(
                    "output {:?}: a buffer of {} elements given, {} needed",
                    o.name,
                    buf.len(),
                    n.unwrap_or(u64::MAX)
                )));
            }
        }
        if self.on_gpu() {
            // the outputs come back from the device into the session's buffers first
            self.shape_outputs(&syms)?;
            self.execute(&views, syms, None, None)?;
            for (dst, t) in outputs.iter_mut().zip(&self.outputs) {
                dst.copy_from_slice(&t.data);
            }
            return Ok(());
        }
        let ptrs: Vec<*mut f32> = outputs.iter_mut().map(|b| b.as_mut_ptr()).collect();
        self.execute(&views, syms, Some(&ptrs), None)
    }

    /// Runs a CUDA model on inputs and outputs that already live in the GPU's memory
    /// (device addresses, `CUdeviceptr`: from cudarc, PyTorch's `data_ptr()`, CuPy...), so
    /// nothing is copied between host and device. Output `i` needs room for the elements
    /// [`Session::output_shapes`] gives (float32 outputs only). Returns once the outputs
    /// are written. The kernel graph is captured the second time the same addresses come and
    /// replayed from then on, so keep reusing the same buffers.
    ///
    /// # Safety
    ///
    /// The runtime checks what the driver can tell it (an error, nothing run, otherwise):
    /// each address is 4-byte aligned device memory of the model's device whose
    /// allocation holds the tensor's bytes, and no output overlaps an input or another
    /// output. It cannot check the rest: each `inputs[i].ptr` must hold the input's
    /// float32 elements (row-major, in `inputs[i].shape`), completely written before this
    /// call (synchronise the stream that wrote it) and unchanged until it returns, and no
    /// other work may use the outputs' memory meanwhile.
    pub unsafe fn run_device(
        &mut self,
        inputs: &[DeviceTensor<'_>],
        outputs: &[u64],
    ) -> Result<(), RuntimeError> {
        if !self.on_gpu() {
            return Err(RuntimeError::Input(
                "run_device needs a CUDA model; this one runs on the CPU".into(),
            ));
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = (inputs, outputs);
            Err(RuntimeError::Device(
                "this runtime was built without its cuda feature".into(),
            ))
        }
        #[cfg(feature = "cuda")]
        self.run_on_device(inputs, outputs)
    }

    /// `run_device` on a CUDA session.
    #[cfg(feature = "cuda")]
    fn run_on_device(
        &mut self,
        inputs: &[DeviceTensor<'_>],
        outputs: &[u64],
    ) -> Result<(), RuntimeError> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape).collect();
        let syms = self.check_new(self.bind_shapes(&shapes)?)?;
        let m = self.model.manifest();
        if outputs.len() != m.outputs.len() {
            return Err(RuntimeError::Input(format!(
                "model has {} output(s), got {} device address(es)",
                m.outputs.len(),
                outputs.len()
            )));
        }
        if let Some(o) = m
            .outputs
            .iter()
            .find(|o| m.buffers[o.buffer as usize].dtype == "i64")
        {
            return Err(RuntimeError::Input(format!(
                "output {:?} is int64: run this model with Session::run",
                o.name
            )));
        }
        let spans = self.device_spans(&syms, inputs, outputs);
        let ins: Vec<u64> = inputs.iter().map(|t| t.ptr).collect();
        self.plan_for(&syms);
        let bound = self
            .plans
            .last()
            .expect("invariant: plan_for leaves it last");
        match (&mut self.exec, &self.model.inner.code) {
            (Exec::Cuda(e), crate::model::Code::Cuda(p)) => {
                p.check_io(&spans)?;
                e.run_device(p, &self.model.inner.manifest, bound, &ins, outputs)
            }
            _ => unreachable!("on_gpu: a CUDA executor over CUDA code"),
        }
    }

    /// The caller's buffers of a `run_device` at binding `syms`, for `Program::check_io`.
    #[cfg(feature = "cuda")]
    fn device_spans(
        &self,
        syms: &[u64],
        inputs: &[DeviceTensor<'_>],
        outputs: &[u64],
    ) -> Vec<crate::cuda::DeviceSpan> {
        let m = self.model.manifest();
        let span = |io: &secc_artifact::IoDecl, kind: &str, ptr: u64| {
            let b = &m.buffers[io.buffer as usize];
            let width = if b.dtype == "i64" { 8 } else { 4 };
            crate::cuda::DeviceSpan {
                what: format!("{kind} {:?}", io.name),
                ptr,
                // bind_shapes checked that every size fits in memory
                bytes: DimDecl::elements(&b.shape, syms)
                    .map_or(u64::MAX, |n| n.saturating_mul(width)),
                written: kind == "output",
            }
        };
        m.inputs
            .iter()
            .zip(inputs)
            .map(|(io, t)| span(io, "input", t.ptr))
            .chain(
                m.outputs
                    .iter()
                    .zip(outputs)
                    .map(|(io, &p)| span(io, "output", p)),
            )
            .collect()
    }

    fn run_views(
        &mut self,
        inputs: &[TensorView<'_>],
        nanos: Option<&[AtomicU64]>,
    ) -> Result<(), RuntimeError> {
        let syms = self.checked(inputs)?;
        self.shape_outputs(&syms)?;
        self.execute(inputs, syms, None, nanos)
    }

    /// Makes the plan of `syms` the last (most recent) entry of the cache, computing it if
    /// needed.
    fn plan_for(&mut self, syms: &[u64]) {
        match self.plans.iter().position(|b| b.syms == syms) {
            Some(i) => {
                let b = self.plans.remove(i);
                self.plans.push(b);
            }
            None => {
                let plan = self.model.manifest().memory_plan(syms);
                if self.plans.len() == PLAN_CACHE {
                    self.plans.remove(0);
                }
                self.plans.push(Bound {
                    syms: syms.to_vec(),
                    offsets: plan.offsets,
                    arena_floats: plan.arena_floats.saturating_add(16),
                });
            }
        }
    }

    /// The number of memory plans cached (one per recent symbol binding).
    pub fn cached_plans(&self) -> usize {
        self.plans.len()
    }

    /// Runs the kernels for a binding; outputs go to `caller_outputs` (checked by the
    /// caller; CPU sessions only) or to the session's own buffers (shaped by
    /// `shape_outputs`).
    fn execute(
        &mut self,
        inputs: &[TensorView<'_>],
        syms: Vec<u64>,
        caller_outputs: Option<&[*mut f32]>,
        nanos: Option<&[AtomicU64]>,
    ) -> Result<(), RuntimeError> {
        self.plan_for(&syms);
        let bound = self
            .plans
            .last()
            .expect("invariant: plan_for leaves it last");
        let loaded = &*self.model.inner;
        match (&mut self.exec, &loaded.code) {
            (Exec::Cpu { spin, pool, arena }, crate::model::Code::Cpu(code)) => {
                if arena.len() < bound.arena_floats {
                    // free the old arena before allocating the new one
                    *arena = crate::mem::Aligned::default();
                    *arena = crate::mem::Aligned::zeroed(bound.arena_floats)?;
                }
                let cpu = CpuRun {
                    code,
                    bound,
                    arena: arena.as_mut_ptr(),
                    threads: self.threads,
                    spin: *spin,
                    pool: pool.as_ref(),
                };
                cpu.run(loaded, inputs, &mut self.outputs, caller_outputs, nanos);
                Ok(())
            }
            #[cfg(feature = "cuda")]
            (Exec::Cuda(e), crate::model::Code::Cuda(p)) => {
                e.run_host(p, &loaded.manifest, bound, inputs, &mut self.outputs, nanos)
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("a session's executor matches its model's code"),
        }
    }

    /// True for a session on a GPU.
    fn on_gpu(&self) -> bool {
        !matches!(self.exec, Exec::Cpu { .. })
    }
}

/// One run on the CPU: the kernels on the calling thread and the pool.
struct CpuRun<'a> {
    code: &'a crate::cpu::Code,
    bound: &'a Bound,
    arena: *mut f32,
    threads: usize,
    spin: bool,
    pool: Option<&'a rayon::ThreadPool>,
}

impl CpuRun<'_> {
    fn run(
        &self,
        loaded: &crate::model::Loaded,
        inputs: &[TensorView<'_>],
        outputs: &mut [Tensor],
        caller_outputs: Option<&[*mut f32]>,
        nanos: Option<&[AtomicU64]>,
    ) {
        let m = &loaded.manifest;
        let (bound, arena) = (self.bound, self.arena);
        let weights = loaded.weights.as_slice().as_ptr() as *mut f32;
        let mut ptr_of = |b: u32| -> *mut f32 {
            let b = match m.buffers[b as usize].kind {
                BufferKind::Alias { of } => of,
                _ => b,
            };
            match m.buffers[b as usize].kind {
                // kernels never write inputs (the manifest's validation refuses such writes)
                BufferKind::Input { index } => inputs[index as usize].data().as_ptr() as *mut f32,
                BufferKind::Output { index } if caller_outputs.is_some() => {
                    caller_outputs.map_or(std::ptr::null_mut(), |o| o[index as usize])
                }
                BufferKind::Output { index } => {
                    let t = &mut outputs[index as usize];
                    match t.dtype {
                        DType::F32 => t.data.as_mut_ptr(),
                        // the kernels write i64 through this pointer (the ABI passes `float*`)
                        DType::I64 => t.ints.as_mut_ptr() as *mut f32,
                    }
                }
                BufferKind::Weight { offset } => {
                    // SAFETY: weight offsets were checked against the weights section at
                    // load; kernels only read weights (validation refuses writes), so
                    // sessions share them.
                    unsafe { weights.add(offset as usize / 4) }
                }
                BufferKind::Temp => {
                    // SAFETY: the plan covers every temp's offset + size, and the caller
                    // grew the arena to at least the plan's size.
                    unsafe { arena.add(bound.offsets[b as usize]) }
                }
                BufferKind::Alias { .. } => unreachable!("aliases resolve to a root"),
            }
        };
        let args = m
            .kernels
            .iter()
            .map(|k| k.args.iter().map(|&a| ptr_of(a)).collect())
            .collect();
        let run = Arc::new(Run::new(
            self.code.kernels.clone(),
            m.kernels.iter().map(|k| k.barrier).collect(),
            args,
            bound.syms.iter().map(|&s| s as i64).collect(),
            self.threads,
            self.spin,
            nanos.is_some(),
        ));
        run.execute(self.pool);
        if let (Some(out), Some(got)) = (nanos, &run.nanos) {
            for (o, g) in out.iter().zip(got) {
                o.fetch_add(g.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }
}
