//! The CUDA executor (feature `cuda`): runs a CUDA artifact's PTX through cudarc's driver
//! API, loaded at run time (`dynamic-loading`), so the runtime builds and runs on machines
//! without CUDA and reports a missing driver or GPU as an error.
//!
//! A [`Program`] belongs to the model: the device's context, the PTX module loaded once,
//! its functions and the weights uploaded once. An [`Exec`] belongs to a session: its
//! stream, the device arena (the memory plan the CPU uses, in device memory), device copies
//! of the inputs and outputs, and one CUDA graph per symbol binding and set of I/O
//! addresses: the whole kernel sequence is captured once and replayed on every run
//! (batch-1 latency is launch-bound otherwise). Every launch follows the manifest's launch
//! contract ([`secc_artifact::LaunchDecl`]); nothing here knows a kernel's ABI.
use crate::session::{Bound, PLAN_CACHE};
use crate::{DType, RuntimeError, Tensor, TensorView};
use cudarc::driver::sys::{self, CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, DevicePtr,
    DriverError, LaunchConfig, PushKernelArg,
};
use secc_artifact::{BufferKind, LaunchDims, Manifest, ParamDecl};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Shared memory a kernel may use without opting in (every architecture).
const DEFAULT_SHARED_BYTES: u32 = 48 * 1024;

fn device_err(what: &str, e: DriverError) -> RuntimeError {
    RuntimeError::Device(format!("{what}: {e}"))
}

/// Runs a driver call; a panic inside cudarc (it panics when the driver library lacks a
/// symbol it binds, e.g. an old driver) becomes an error instead of unwinding into the
/// caller.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, DriverError>) -> Result<T, RuntimeError> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(device_err(what, e)),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("a panic in the CUDA bindings");
            Err(RuntimeError::Device(format!(
                "{what}: the CUDA driver library failed: {msg}"
            )))
        }
    }
}

/// The number of CUDA devices: an error naming the cause when there is no driver library
/// or the driver finds no device.
pub fn device_count() -> Result<usize, RuntimeError> {
    // SAFETY: only tries to dlopen the driver library under its known names; no driver
    // function is called.
    if !unsafe { sys::is_culib_present() } {
        return Err(RuntimeError::Device(
            "no NVIDIA driver: libcuda.so was not found (install the NVIDIA driver to run CUDA \
             artifacts, or compile the model with `--target cpu`)"
                .into(),
        ));
    }
    let n = guarded(
        "looking for CUDA devices",
        || match CudaContext::device_count() {
            Err(DriverError(sys::CUresult::CUDA_ERROR_NO_DEVICE)) => Ok(0),
            r => r,
        },
    )?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Opens CUDA device `ordinal`.
fn open(ordinal: usize) -> Result<Arc<CudaContext>, RuntimeError> {
    let n = device_count()?;
    if n == 0 {
        return Err(RuntimeError::Device(
            "no CUDA GPU: the NVIDIA driver is installed but finds no device (compile the \
             model with `--target cpu` to run it here)"
                .into(),
        ));
    }
    if ordinal >= n {
        return Err(RuntimeError::Device(format!(
            "CUDA device {ordinal} was asked for, but this machine has {n}"
        )));
    }
    guarded(&format!("opening CUDA device {ordinal}"), || {
        CudaContext::new(ordinal)
    })
}

/// The model's half: context, module, functions, weights on the device.
pub struct Program {
    ctx: Arc<CudaContext>,
    _module: Arc<CudaModule>,
    functions: Vec<CudaFunction>,
    /// launch contract per kernel (validated with the manifest)
    launches: Vec<secc_artifact::LaunchDecl>,
    _weights: CudaSlice<f32>,
    weights_ptr: u64,
    /// the device's name and compute capability, for messages
    pub device: String,
}

impl Program {
    /// Opens device `ordinal`, checks that it can run the artifact (architecture, shared
    /// memory), loads the PTX and uploads the weights.
    pub fn load(
        m: &Manifest,
        ptx: &str,
        weights: &[f32],
        ordinal: usize,
    ) -> Result<Self, RuntimeError> {
        let ctx = open(ordinal)?;
        let name = guarded("reading the device name", || ctx.name())?;
        let (major, minor) = guarded("reading the compute capability", || {
            ctx.compute_capability()
        })?;
        let device = format!("{name} (device {ordinal}, sm_{major}{minor})");
        let arch = &m.targets[0].cpu;
        let want = arch
            .strip_prefix("sm_")
            .and_then(|v| v.parse::<i32>().ok())
            .ok_or_else(|| RuntimeError::Target(format!("unknown PTX architecture {arch:?}")))?;
        if want > major * 10 + minor {
            return Err(RuntimeError::Target(format!(
                "the artifact's PTX is for {arch}, newer than {device}; recompile with `--target cuda --cpu sm_{major}{minor}`"
            )));
        }
        let optin = guarded("reading the shared memory limit", || {
            ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        })?;
        let module = guarded("loading the PTX", || {
            ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx.to_string()))
        })?;
        let mut functions = Vec::with_capacity(m.kernels.len());
        let mut launches = Vec::with_capacity(m.kernels.len());
        for k in &m.kernels {
            let l = k.launch.clone().ok_or_else(|| {
                RuntimeError::Load(format!("kernel {} has no launch contract", k.name))
            })?;
            if i64::from(l.shared_bytes) > i64::from(optin) {
                return Err(RuntimeError::Device(format!(
                    "kernel {} ({}) needs {} bytes of shared memory per block; {device} has {optin}",
                    k.name, k.origin, l.shared_bytes
                )));
            }
            let f = guarded(&format!("kernel {}", k.name), || {
                module.load_function(&k.name)
            })?;
            if l.shared_bytes > DEFAULT_SHARED_BYTES {
                guarded(&format!("kernel {}: shared memory size", k.name), || {
                    f.set_attribute(
                        CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        l.shared_bytes as i32,
                    )
                })?;
            }
            functions.push(f);
            launches.push(l);
        }
        let stream = ctx.default_stream();
        let host: &[f32] = if weights.is_empty() { &[0.0] } else { weights };
        let w = guarded("uploading the weights", || stream.clone_htod(host))?;
        guarded("uploading the weights", || stream.synchronize())?;
        let weights_ptr = address(&w, &stream);
        Ok(Program {
            ctx,
            _module: module,
            functions,
            launches,
            _weights: w,
            weights_ptr,
            device,
        })
    }
}

/// A device buffer's address (for kernel parameters and graph capture).
fn address(s: &CudaSlice<f32>, stream: &CudaStream) -> u64 {
    let (p, _sync) = s.device_ptr(stream);
    p
}

/// A captured kernel sequence.
struct Replay(CudaGraph);

// SAFETY: a CUDA graph must not be used by two threads at once. A `Replay` lives in one
// session's `Exec`, which is only used through `&mut Session` (one thread at a time); it
// may move to another thread between runs, which the driver allows.
unsafe impl Send for Replay {}

/// A device buffer that only grows.
#[derive(Default)]
struct Grown {
    buf: Option<CudaSlice<f32>>,
    ptr: u64,
}

impl Grown {
    /// Makes the buffer hold at least `floats`; true if it was (re)allocated, which
    /// invalidates graphs captured with its old address.
    fn reserve(&mut self, stream: &Arc<CudaStream>, floats: usize) -> Result<bool, RuntimeError> {
        if self.buf.as_ref().is_some_and(|b| b.len() >= floats) {
            return Ok(false);
        }
        self.buf = None;
        let b = guarded("allocating device memory", || {
            stream.alloc_zeros::<f32>(floats.max(1))
        })
        .map_err(|e| RuntimeError::Memory(format!("{floats} floats on the GPU: {e}")))?;
        self.ptr = address(&b, stream);
        self.buf = Some(b);
        Ok(true)
    }
}

/// A session's half: stream, arena, I/O buffers, captured graphs.
pub struct Exec {
    stream: Arc<CudaStream>,
    arena: Grown,
    inputs: Vec<Grown>,
    outputs: Vec<Grown>,
    /// graphs by (binding, input and output addresses), most recently used last
    graphs: Vec<(Vec<u64>, Replay)>,
}

impl Exec {
    /// A session's executor on the program's device.
    pub fn new(p: &Program) -> Result<Self, RuntimeError> {
        let stream = guarded("creating a CUDA stream", || p.ctx.new_stream())?;
        Ok(Exec {
            stream,
            arena: Grown::default(),
            inputs: vec![],
            outputs: vec![],
            graphs: vec![],
        })
    }

    /// One run with host inputs and outputs: inputs copied to the device, the graph of
    /// this binding replayed (captured on first use), outputs copied back.
    pub fn run_host(
        &mut self,
        p: &Program,
        m: &Manifest,
        plan: &Bound,
        inputs: &[TensorView<'_>],
        outputs: &mut [Tensor],
        nanos: Option<&[AtomicU64]>,
    ) -> Result<(), RuntimeError> {
        let mut moved = false;
        self.inputs.resize_with(inputs.len(), Grown::default);
        for (g, t) in self.inputs.iter_mut().zip(inputs) {
            moved |= g.reserve(&self.stream, t.data().len())?;
            if let Some(b) = g.buf.as_mut() {
                let dst = &mut b.slice_mut(..t.data().len());
                guarded("copying an input to the GPU", || {
                    self.stream.memcpy_htod(t.data(), dst)
                })?;
            }
        }
        self.outputs.resize_with(outputs.len(), Grown::default);
        for (g, t) in self.outputs.iter_mut().zip(outputs.iter()) {
            moved |= g.reserve(&self.stream, words(t))?;
        }
        if moved {
            self.graphs.clear();
        }
        let ins: Vec<u64> = self.inputs.iter().map(|g| g.ptr).collect();
        let outs: Vec<u64> = self.outputs.iter().map(|g| g.ptr).collect();
        self.launch(p, m, plan, &ins, &outs, nanos)?;
        for (g, t) in self.outputs.iter().zip(outputs.iter_mut()) {
            let Some(b) = g.buf.as_ref() else { continue };
            let n = words(t);
            let src = b.slice(..n);
            match t.dtype {
                DType::F32 => guarded("copying an output from the GPU", || {
                    self.stream.memcpy_dtoh(&src, &mut t.data[..])
                })?,
                DType::I64 => {
                    let mut raw = vec![0f32; n];
                    guarded("copying an output from the GPU", || {
                        self.stream.memcpy_dtoh(&src, &mut raw[..])
                    })?;
                    for (v, w) in t.ints.iter_mut().zip(raw.chunks_exact(2)) {
                        let lo = u64::from(w[0].to_bits());
                        let hi = u64::from(w[1].to_bits());
                        *v = (lo | hi << 32) as i64;
                    }
                }
            }
        }
        guarded("finishing the run", || self.stream.synchronize())
    }

    /// One run on inputs and outputs already in device memory (addresses checked by the
    /// caller's contract, see `Session::run_device`).
    pub fn run_device(
        &mut self,
        p: &Program,
        m: &Manifest,
        plan: &Bound,
        ins: &[u64],
        outs: &[u64],
    ) -> Result<(), RuntimeError> {
        self.launch(p, m, plan, ins, outs, None)?;
        guarded("finishing the run", || self.stream.synchronize())
    }

    /// Launches the kernels of a binding: the cached graph of this binding and these I/O
    /// addresses, else a new capture; kernel by kernel, synchronised and timed, when
    /// profiling.
    fn launch(
        &mut self,
        p: &Program,
        m: &Manifest,
        plan: &Bound,
        ins: &[u64],
        outs: &[u64],
        nanos: Option<&[AtomicU64]>,
    ) -> Result<(), RuntimeError> {
        if self.arena.reserve(&self.stream, plan.arena_floats)? {
            self.graphs.clear();
        }
        // every launch of the binding, checked before anything is captured
        let dims: Vec<Option<LaunchDims>> = p
            .launches
            .iter()
            .zip(&m.kernels)
            .map(|(l, k)| {
                l.dims(&plan.syms).map_err(|e| {
                    RuntimeError::Input(format!("kernel {} ({}): {e}", k.name, k.origin))
                })
            })
            .collect::<Result<_, _>>()?;
        let addr = |b: u32| -> u64 {
            let b = match m.buffers[b as usize].kind {
                BufferKind::Alias { of } => of,
                _ => b,
            };
            match m.buffers[b as usize].kind {
                BufferKind::Input { index } => ins[index as usize],
                BufferKind::Output { index } => outs[index as usize],
                BufferKind::Weight { offset } => p.weights_ptr + offset,
                BufferKind::Temp => self.arena.ptr + 4 * plan.offsets[b as usize] as u64,
                BufferKind::Alias { .. } => unreachable!("aliases resolve to a root"),
            }
        };
        // every kernel's parameter values (64 bits each: addresses, then symbols)
        let params: Vec<Vec<u64>> = p
            .launches
            .iter()
            .map(|l| {
                l.params
                    .iter()
                    .map(|q| match *q {
                        ParamDecl::Buffer(b) => addr(b),
                        ParamDecl::Symbol(s) => plan.syms[s as usize],
                    })
                    .collect()
            })
            .collect();
        if let Some(nanos) = nanos {
            for (k, t) in nanos.iter().enumerate().take(dims.len()) {
                let start = Instant::now();
                self.enqueue(p, k, dims[k], &params[k])?;
                guarded("running a kernel", || self.stream.synchronize())?;
                t.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            return Ok(());
        }
        let mut key = plan.syms.clone();
        key.extend_from_slice(ins);
        key.extend_from_slice(outs);
        let hit = self.graphs.iter().position(|(k, _)| *k == key);
        let replay = match hit {
            Some(i) => self.graphs.remove(i).1,
            None => self.capture(p, &dims, &params)?,
        };
        let launched = guarded("replaying the kernel graph", || replay.0.launch());
        if self.graphs.len() == PLAN_CACHE {
            self.graphs.remove(0);
        }
        self.graphs.push((key, replay));
        launched
    }

    /// Records every kernel into a graph on the session's stream.
    fn capture(
        &self,
        p: &Program,
        dims: &[Option<LaunchDims>],
        params: &[Vec<u64>],
    ) -> Result<Replay, RuntimeError> {
        guarded("capturing the kernel graph", || {
            self.stream
                .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        })?;
        let mut queued = Ok(());
        for k in 0..dims.len() {
            queued = self.enqueue(p, k, dims[k], &params[k]);
            if queued.is_err() {
                break;
            }
        }
        // end the capture in every case, so the stream is usable again
        let graph = guarded("capturing the kernel graph", || {
            self.stream.end_capture(sys::CUgraphInstantiate_flags(0))
        });
        queued?;
        graph?
            .map(Replay)
            .ok_or_else(|| RuntimeError::Device("the captured kernel graph is empty".into()))
    }

    /// Puts kernel `k` on the stream (nothing for a launch without CTAs).
    fn enqueue(
        &self,
        p: &Program,
        k: usize,
        dims: Option<LaunchDims>,
        params: &[u64],
    ) -> Result<(), RuntimeError> {
        let Some(d) = dims else { return Ok(()) };
        let cfg = LaunchConfig {
            grid_dim: (d.grid[0], d.grid[1], d.grid[2]),
            block_dim: (d.block[0], d.block[1], d.block[2]),
            shared_mem_bytes: d.shared_bytes,
        };
        let mut b = self.stream.launch_builder(&p.functions[k]);
        for v in params {
            b.arg(v);
        }
        guarded("launching a kernel", || {
            // SAFETY: the parameters are what the kernel's launch contract lists, in its
            // order and types (64-bit device addresses of buffers the memory plan sized for
            // this binding, then 64-bit symbol values), and the grid, block and shared
            // memory are the contract's for this binding; the code generator emitted the
            // kernel for exactly that contract, and the layout digest ties the manifest to
            // the PTX.
            unsafe { b.launch(cfg) }.map(|_| ())
        })
    }
}

/// 4-byte words of a host output tensor (an i64 element is two).
fn words(t: &Tensor) -> usize {
    match t.dtype {
        DType::F32 => t.data.len(),
        DType::I64 => t.ints.len() * 2,
    }
}
