//! The CUDA executor (feature `cuda`): runs a CUDA artifact's PTX through cudarc's driver
//! API, loaded at run time (`dynamic-loading`), so the runtime builds and runs on machines
//! without CUDA and reports a missing driver or GPU as an error.
//!
//! A [`Program`] belongs to the model: the device's context, the PTX module loaded once,
//! its functions and the weights uploaded once. An [`Exec`] belongs to a session: its
//! stream, the device arena (the memory plan the CPU uses, in device memory), device copies
//! of the inputs and outputs, and one CUDA graph per symbol binding and set of I/O
//! addresses: the whole kernel sequence is captured the second time they come and replayed
//! on every run after (batch-1 latency is launch-bound otherwise). Every launch follows the manifest's launch
//! contract ([`secc_artifact::LaunchDecl`]); nothing here knows a kernel's ABI.
use crate::session::{Bound, PLAN_CACHE};
use crate::{DType, RuntimeError, Tensor, TensorView};
use cudarc::driver::result;
use cudarc::driver::sys::{self, CUdevice_attribute, CUfunction_attribute, CUpointer_attribute};
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
    /// `name (origin)` per kernel, for messages
    names: Vec<String>,
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
        let names = m
            .kernels
            .iter()
            .map(|k| format!("{} ({})", k.name, k.origin))
            .collect();
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
            names,
            _weights: w,
            weights_ptr,
            device,
        })
    }
}

/// A caller's device buffer for [`Program::check_io`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpan {
    /// what it is, for messages (`input "x"`)
    pub what: String,
    /// device address of its first byte
    pub ptr: u64,
    /// bytes the run reads or writes from `ptr`
    pub bytes: u64,
    /// written by the run (an output)
    pub written: bool,
}

/// The checks of caller buffers that need no driver: not null, 4-byte aligned (the
/// kernels load and store 32-bit words), no wrap-around, and no output overlapping any
/// other buffer (inputs may share memory: they are only read).
pub fn check_spans(spans: &[DeviceSpan]) -> Result<(), RuntimeError> {
    for s in spans {
        if s.ptr == 0 {
            return Err(RuntimeError::Input(format!(
                "{}: the device address is null",
                s.what
            )));
        }
        if s.ptr % 4 != 0 {
            return Err(RuntimeError::Input(format!(
                "{}: device address {:#x} is not 4-byte aligned",
                s.what, s.ptr
            )));
        }
        if s.ptr.checked_add(s.bytes).is_none() {
            return Err(RuntimeError::Input(format!(
                "{}: {} bytes from {:#x} wrap around the address space",
                s.what, s.bytes, s.ptr
            )));
        }
    }
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let disjoint = a.bytes == 0
                || b.bytes == 0
                || a.ptr + a.bytes <= b.ptr
                || b.ptr + b.bytes <= a.ptr;
            if (a.written || b.written) && !disjoint {
                return Err(RuntimeError::Input(format!(
                    "{} and {} overlap in device memory: an output must not share memory \
                     with an input or another output",
                    a.what, b.what
                )));
            }
        }
    }
    Ok(())
}

impl Program {
    /// Checks the caller's device buffers of a `run_device`: [`check_spans`], then, asking
    /// the driver, that each is memory of this program's device and holds its bytes (the
    /// allocation containing `ptr` extends to `ptr + bytes`).
    pub fn check_io(&self, spans: &[DeviceSpan]) -> Result<(), RuntimeError> {
        check_spans(spans)?;
        guarded("binding the CUDA context", || self.ctx.bind_to_thread())?;
        let ordinal = self.ctx.ordinal();
        for s in spans.iter().filter(|s| s.bytes > 0) {
            let not_device = |e: RuntimeError| {
                RuntimeError::Input(format!(
                    "{}: {:#x} is not device memory of the CUDA driver ({e})",
                    s.what, s.ptr
                ))
            };
            let dev: i32 = pointer_attr(
                s.ptr,
                CUpointer_attribute::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
            )
            .map_err(not_device)?;
            let start: u64 = pointer_attr(
                s.ptr,
                CUpointer_attribute::CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
            )
            .map_err(not_device)?;
            let size: usize =
                pointer_attr(s.ptr, CUpointer_attribute::CU_POINTER_ATTRIBUTE_RANGE_SIZE)
                    .map_err(not_device)?;
            if usize::try_from(dev).ok() != Some(ordinal) {
                return Err(RuntimeError::Input(format!(
                    "{}: {:#x} is memory of CUDA device {dev}; the model runs on device {ordinal}",
                    s.what, s.ptr
                )));
            }
            let end = start.saturating_add(size as u64);
            if s.ptr + s.bytes > end {
                return Err(RuntimeError::Input(format!(
                    "{}: needs {} bytes from {:#x}, but its allocation ends {} bytes after it",
                    s.what,
                    s.bytes,
                    s.ptr,
                    end.saturating_sub(s.ptr)
                )));
            }
        }
        Ok(())
    }
}

/// One attribute of a device address (`T` must be the attribute's C type).
fn pointer_attr<T: Default>(ptr: u64, attr: CUpointer_attribute) -> Result<T, RuntimeError> {
    let mut v = T::default();
    guarded("reading a pointer attribute", || {
        // SAFETY: `v` is a live, writable `T`, the C type the driver writes for `attr` (int
        // for the device ordinal, CUdeviceptr for the range start, size_t for its size);
        // the driver only reads `ptr`'s address, never the memory behind it.
        unsafe { sys::cuPointerGetAttribute((&mut v as *mut T).cast(), attr, ptr) }.result()
    })?;
    Ok(v)
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
    /// Makes the buffer (`what`, for messages) hold at least `floats`.
    fn reserve(
        &mut self,
        stream: &Arc<CudaStream>,
        floats: usize,
        what: &str,
    ) -> Result<(), RuntimeError> {
        if self.buf.as_ref().is_some_and(|b| b.len() >= floats) {
            return Ok(());
        }
        self.buf = None;
        // cudarc multiplies by the element size unchecked
        if floats
            .checked_mul(4)
            .is_none_or(|b| b > isize::MAX as usize)
        {
            return Err(RuntimeError::Memory(format!(
                "{what}: {floats} floats is more than a GPU can hold"
            )));
        }
        let b = guarded(&format!("allocating the {what}"), || {
            stream.alloc_zeros::<f32>(floats.max(1))
        })
        .map_err(|e| RuntimeError::Memory(format!("{what}: {floats} floats on the GPU: {e}")))?;
        self.ptr = address(&b, stream);
        self.buf = Some(b);
        Ok(())
    }
}

/// A session's half: stream, arena, I/O buffers, captured graphs.
pub struct Exec {
    stream: Arc<CudaStream>,
    arena: Grown,
    inputs: Vec<Grown>,
    outputs: Vec<Grown>,
    /// graphs by [`Exec::key`], most recently used last
    graphs: Vec<(Vec<u64>, Replay)>,
    /// keys launched once without a graph, most recent last: a key is captured the second
    /// time it comes, so a caller whose device buffers move every run pays no capture
    seen: Vec<Vec<u64>>,
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
            seen: vec![],
        })
    }

    /// One run with host inputs and outputs: inputs copied to the device, the graph of
    /// this binding replayed (see [`Exec::launch`]), outputs copied back.
    pub fn run_host(
        &mut self,
        p: &Program,
        m: &Manifest,
        plan: &Bound,
        inputs: &[TensorView<'_>],
        outputs: &mut [Tensor],
        nanos: Option<&[AtomicU64]>,
    ) -> Result<(), RuntimeError> {
        self.inputs.resize_with(inputs.len(), Grown::default);
        for ((g, t), d) in self.inputs.iter_mut().zip(inputs).zip(&m.inputs) {
            let what = format!("input {:?}", d.name);
            g.reserve(&self.stream, t.data().len(), &what)?;
            if let Some(b) = g.buf.as_mut() {
                let dst = &mut b.slice_mut(..t.data().len());
                guarded(&format!("copying {what} to the GPU"), || {
                    self.stream.memcpy_htod(t.data(), dst)
                })?;
            }
        }
        self.outputs.resize_with(outputs.len(), Grown::default);
        for ((g, t), d) in self.outputs.iter_mut().zip(outputs.iter()).zip(&m.outputs) {
            g.reserve(&self.stream, words(t), &format!("output {:?}", d.name))?;
        }
        let ins: Vec<u64> = self.inputs.iter().map(|g| g.ptr).collect();
        let outs: Vec<u64> = self.outputs.iter().map(|g| g.ptr).collect();
        self.launch(p, m, plan, &ins, &outs, nanos)?;
        for ((g, t), d) in self.outputs.iter().zip(outputs.iter_mut()).zip(&m.outputs) {
            let Some(b) = g.buf.as_ref() else { continue };
            let n = words(t);
            let src = b.slice(..n);
            let what = format!("copying output {:?} from the GPU", d.name);
            match t.dtype {
                DType::F32 => guarded(&what, || self.stream.memcpy_dtoh(&src, &mut t.data[..]))?,
                DType::I64 => {
                    let mut raw = vec![0f32; n];
                    guarded(&what, || self.stream.memcpy_dtoh(&src, &mut raw[..]))?;
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

    /// Launches the kernels of a binding: the cached graph of [`Exec::key`], else a new
    /// capture if the key came before, else kernel by kernel; kernel by kernel,
    /// synchronised and timed, when profiling.
    fn launch(
        &mut self,
        p: &Program,
        m: &Manifest,
        plan: &Bound,
        ins: &[u64],
        outs: &[u64],
        nanos: Option<&[AtomicU64]>,
    ) -> Result<(), RuntimeError> {
        self.arena
            .reserve(&self.stream, plan.arena_floats, "arena of temporaries")?;
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
                guarded(&format!("running kernel {}", p.names[k]), || {
                    self.stream.synchronize()
                })?;
                t.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            return Ok(());
        }
        let key = self.key(plan, ins, outs);
        let replay = match self.graphs.iter().position(|(k, _)| *k == key) {
            Some(i) => self.graphs.remove(i).1,
            None => match self.seen.iter().position(|k| *k == key) {
                Some(i) => {
                    self.seen.remove(i);
                    self.capture(p, &dims, &params)?
                }
                None => {
                    for k in 0..dims.len() {
                        self.enqueue(p, k, dims[k], &params[k])?;
                    }
                    if self.seen.len() == PLAN_CACHE {
                        self.seen.remove(0);
                    }
                    self.seen.push(key);
                    return Ok(());
                }
            },
        };
        let launched = guarded("replaying the kernel graph", || replay.0.launch());
        if self.graphs.len() == PLAN_CACHE {
            self.graphs.remove(0);
        }
        self.graphs.push((key, replay));
        launched
    }

    /// What a captured graph depends on: the symbols and every address its kernels were
    /// given (arena, inputs, outputs; the weights never move). A graph whose key matches
    /// is valid whatever was reallocated in between, so nothing is invalidated by hand.
    fn key(&self, plan: &Bound, ins: &[u64], outs: &[u64]) -> Vec<u64> {
        let mut key = plan.syms.clone();
        key.push(self.arena.ptr);
        key.extend_from_slice(ins);
        key.extend_from_slice(outs);
        key
    }

    /// Records every kernel into a graph on the session's stream.
    fn capture(
        &self,
        p: &Program,
        dims: &[Option<LaunchDims>],
        params: &[Vec<u64>],
    ) -> Result<Replay, RuntimeError> {
        // cudarc keeps errors of asynchronous frees and drops in a flag on the context and
        // reports them from the next call that binds it: report them here, not from
        // `end_capture`, which would then leave the stream capturing
        guarded("an earlier CUDA operation of this model", || {
            p.ctx.check_err()
        })?;
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
        if graph.is_err() {
            self.abandon_capture();
        }
        queued?;
        graph?
            .map(Replay)
            .ok_or_else(|| RuntimeError::Device("the captured kernel graph is empty".into()))
    }

    /// Ends a capture that `end_capture` failed to end (it can fail before calling the
    /// driver), so that the stream stays usable; the partial graph is dropped.
    fn abandon_capture(&self) {
        let s = self.stream.cu_stream();
        let _ = guarded("abandoning a capture", || {
            // SAFETY: `s` is this session's live stream, current on this thread since the
            // capture began here; the graph the driver returns is destroyed once and never
            // instantiated or used.
            unsafe {
                if result::stream::is_capturing(s)?
                    == sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE
                {
                    return Ok(());
                }
                let g = result::stream::end_capture(s)?;
                if !g.is_null() {
                    result::graph::destroy(g)?;
                }
            }
            Ok(())
        });
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
        guarded(&format!("launching kernel {}", p.names[k]), || {
            // SAFETY: the parameters are what the kernel's launch contract lists, in its
            // order and types (64-bit device addresses, then 64-bit symbol values), and the
            // grid, block and shared memory are the contract's for this binding; the code
            // generator emitted the kernel for exactly that contract, and the layout digest
            // ties the manifest to the PTX. The addresses are of buffers sized for this
            // binding: the arena and the session's I/O buffers by the memory plan, the
            // caller's by `Session::run_device`'s contract, checked by `Program::check_io`.
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

#[cfg(test)]
mod tests {
    use super::{check_spans, DeviceSpan};

    fn span(what: &str, ptr: u64, bytes: u64, written: bool) -> DeviceSpan {
        DeviceSpan {
            what: what.into(),
            ptr,
            bytes,
            written,
        }
    }

    fn err(spans: &[DeviceSpan]) -> String {
        check_spans(spans).unwrap_err().to_string()
    }

    #[test]
    fn caller_buffers_are_checked_before_the_driver_sees_them() {
        let x = span("input \"x\"", 0x1000, 64, false);
        let y = span("output \"y\"", 0x2000, 64, true);
        check_spans(&[x.clone(), y.clone()]).unwrap();
        // inputs are only read: two may share memory
        check_spans(&[x.clone(), span("input \"z\"", 0x1010, 64, false), y.clone()]).unwrap();
        // adjacent is not overlapping
        check_spans(&[x.clone(), span("output \"y\"", 0x1040, 4, true)]).unwrap();
        assert!(err(&[span("input \"x\"", 0, 4, false)])
            .contains("input \"x\": the device address is null"));
        assert!(err(&[x.clone(), span("output \"y\"", 0x2002, 4, true)])
            .contains("0x2002 is not 4-byte aligned"));
        assert!(err(&[span("output \"y\"", u64::MAX - 3, 8, true)]).contains("wrap around"));
        let e = err(&[x.clone(), span("output \"y\"", 0x103c, 8, true)]);
        assert!(e.contains("input \"x\" and output \"y\" overlap"), "{e}");
        let e = err(&[y.clone(), span("output \"w\"", 0x1f00, 0x200, true)]);
        assert!(e.contains("output \"y\" and output \"w\" overlap"), "{e}");
        // an empty tensor overlaps nothing
        check_spans(&[x, span("output \"e\"", 0x1000, 0, true)]).unwrap();
    }
}
