//! `secc._secc`, the native half of the `secc` Python package: `compile` (through
//! `secc_driver::compile_file`, as the CLI does) and `Model` (a `secc_runtime::Model` with a
//! pool of sessions, so Python threads calling `run` at once each get their own). Inputs are
//! borrowed from numpy (the Python half makes them C-contiguous float32, copying only
//! arrays that are not); outputs move into numpy arrays without a copy. The GIL is released
//! while a model compiles or runs.
#![forbid(unsafe_code)]
use numpy::{
    PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn,
    PyUntypedArrayMethods,
};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use secc_runtime::{DType, Dim, ErrorKind, RuntimeError, Session, TensorView};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

create_exception!(
    _secc,
    SeccError,
    PyException,
    "Base class of every secc error."
);
create_exception!(
    _secc,
    CompileError,
    SeccError,
    "The model could not be compiled (unsupported op, bad option, output refused...)."
);
create_exception!(
    _secc,
    LoadError,
    SeccError,
    "The artifact could not be loaded (missing, damaged, built for another machine...)."
);
create_exception!(
    _secc,
    InvalidInputError,
    SeccError,
    "Inputs that do not fit the model (names, count, shapes, dtype)."
);

/// Sessions kept for reuse per model: more concurrent callers than this still run, their
/// extra sessions are dropped afterwards.
const POOLED_SESSIONS: usize = 64;

fn runtime_error(e: RuntimeError) -> PyErr {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::InvalidInput => InvalidInputError::new_err(msg),
        ErrorKind::Memory => SeccError::new_err(msg),
        _ => LoadError::new_err(msg),
    }
}

/// Compiles an ONNX model into a secc artifact; the options are the CLI's (`secc MODEL -o
/// OUT --target --cpu --arch --fix-dim --input-shape --max-memory --no-fuse --force
/// --no-winograd`). Returns
/// `{"bytes": size, "se_blocks": fused}`.
#[pyfunction]
#[pyo3(signature = (model, output, *, target = "cpu".to_string(), cpu = "native".to_string(),
    arch = "sm_80".to_string(), fix_dim = None, input_shape = None, max_memory = None,
    fuse = true, force = false, winograd = true))]
#[allow(clippy::too_many_arguments)]
fn compile<'py>(
    py: Python<'py>,
    model: PathBuf,
    output: PathBuf,
    target: String,
    cpu: String,
    arch: String,
    fix_dim: Option<BTreeMap<String, u64>>,
    input_shape: Option<BTreeMap<String, Vec<Option<u64>>>>,
    max_memory: Option<f64>,
    fuse: bool,
    force: bool,
    winograd: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = secc_driver::CompileOptions {
        target,
        cpu,
        arch,
        fix_dims: fix_dim.unwrap_or_default(),
        input_shapes: input_shape.unwrap_or_default(),
        max_memory_gib: max_memory,
        fuse,
        force,
        winograd,
    };
    let r = py
        .detach(|| secc_driver::compile_file(&model, &output, &opts))
        .map_err(|e| CompileError::new_err(format!("{e:#}")))?;
    let d = PyDict::new(py);
    d.set_item("bytes", r.bytes)?;
    d.set_item("se_blocks", r.se_blocks)?;
    Ok(d)
}

/// A loaded secc artifact (native half of `secc.Model`).
#[pyclass(frozen, module = "secc._secc")]
struct Model {
    model: secc_runtime::Model,
    threads: usize,
    sessions: Mutex<Vec<Session>>,
}

impl Model {
    fn session(&self) -> PyResult<Session> {
        let pooled = self.sessions.lock().ok().and_then(|mut v| v.pop());
        match pooled {
            Some(s) => Ok(s),
            None => self.model.session(self.threads).map_err(runtime_error),
        }
    }

    fn give_back(&self, s: Session) {
        if let Ok(mut v) = self.sessions.lock() {
            if v.len() < POOLED_SESSIONS {
                v.push(s);
            }
        }
    }

    /// The model's inputs from a `{name: float32 C-contiguous array}` dict, in model order.
    fn arrays<'py>(
        &self,
        inputs: &Bound<'py, PyDict>,
    ) -> PyResult<Vec<PyReadonlyArrayDyn<'py, f32>>> {
        let names = self.model.input_names();
        for k in inputs.keys() {
            let k: String = k.extract()?;
            if !names.contains(&k.as_str()) {
                return Err(InvalidInputError::new_err(format!(
                    "the model has no input named {k:?} (inputs: {})",
                    names.join(", ")
                )));
            }
        }
        names
            .iter()
            .map(|n| {
                let a = inputs.get_item(n)?.ok_or_else(|| {
                    InvalidInputError::new_err(format!(
                        "input {n:?} is missing (inputs: {})",
                        names.join(", ")
                    ))
                })?;
                a.extract::<PyReadonlyArrayDyn<'py, f32>>().map_err(|_| {
                    InvalidInputError::new_err(format!(
                        "input {n:?}: expected a float32 numpy array"
                    ))
                })
            })
            .collect()
    }

    /// Outputs written by the kernels straight into the caller's arrays (`out=`).
    fn run_into_arrays<'py>(
        &self,
        py: Python<'py>,
        s: &mut Session,
        views: &[TensorView<'_>],
        out: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let shapes = s.output_shapes(views).map_err(runtime_error)?;
        let names = self.model.output_names();
        let mut rw: Vec<PyReadwriteArrayDyn<'py, f32>> = Vec::with_capacity(names.len());
        for (n, shape) in names.iter().zip(&shapes) {
            let a = out.get_item(n)?.ok_or_else(|| {
                InvalidInputError::new_err(format!("out: no array for output {n:?}"))
            })?;
            let a = a.cast::<PyArrayDyn<f32>>().map_err(|_| {
                InvalidInputError::new_err(format!("out[{n:?}]: expected a float32 numpy array"))
            })?;
            if a.shape() != shape.as_slice() {
                return Err(InvalidInputError::new_err(format!(
                    "out[{n:?}]: shape {:?}, the output's is {shape:?}",
                    a.shape()
                )));
            }
            let w = a.try_readwrite().map_err(|e| {
                InvalidInputError::new_err(format!("out[{n:?}] is not writeable: {e}"))
            })?;
            rw.push(w);
        }
        let mut bufs: Vec<&mut [f32]> = rw
            .iter_mut()
            .zip(&names)
            .map(|(a, n)| {
                a.as_slice_mut().map_err(|_| {
                    InvalidInputError::new_err(format!("out[{n:?}] is not C-contiguous"))
                })
            })
            .collect::<PyResult<_>>()?;
        py.detach(|| s.run_into(views, &mut bufs))
            .map_err(runtime_error)?;
        Ok(out.clone())
    }

    /// Outputs of any dtype, run into the session's buffers (reused from run to run) and
    /// copied once into new numpy arrays.
    fn run_and_copy<'py>(
        &self,
        py: Python<'py>,
        s: &mut Session,
        views: &[TensorView<'_>],
    ) -> PyResult<Bound<'py, PyDict>> {
        py.detach(|| s.run(views).map(|_| ()))
            .map_err(runtime_error)?;
        let d = PyDict::new(py);
        for (name, t) in self.model.output_names().into_iter().zip(s.take_outputs()) {
            let a = match t.dtype {
                DType::F32 => PyArray1::from_vec(py, t.data)
                    .reshape(t.shape.as_slice())?
                    .into_any(),
                DType::I64 => PyArray1::from_vec(py, t.ints)
                    .reshape(t.shape.as_slice())?
                    .into_any(),
            };
            d.set_item(name, a)?;
        }
        Ok(d)
    }

    fn views<'a>(arrays: &'a [PyReadonlyArrayDyn<'_, f32>]) -> PyResult<Vec<TensorView<'a>>> {
        arrays
            .iter()
            .map(|a| {
                let data = a
                    .as_slice()
                    .map_err(|_| InvalidInputError::new_err("input arrays must be C-contiguous"))?;
                TensorView::new(a.shape(), data).map_err(runtime_error)
            })
            .collect()
    }
}

fn io_list<'py>(
    py: Python<'py>,
    list: &[secc_runtime::IoInfo],
) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    list.iter()
        .map(|io| {
            let dims: Vec<Bound<'py, PyAny>> = io
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(v) => v
                        .into_pyobject(py)
                        .map(|o| o.into_any())
                        .map_err(PyErr::from),
                    sym => sym
                        .to_string()
                        .into_pyobject(py)
                        .map(|o| o.into_any())
                        .map_err(PyErr::from),
                })
                .collect::<PyResult<_>>()?;
            let shape = PyTuple::new(py, dims)?;
            let dtype = match io.dtype {
                DType::F32 => "float32",
                DType::I64 => "int64",
            };
            PyTuple::new(
                py,
                [
                    io.name.clone().into_pyobject(py)?.into_any(),
                    shape.into_any(),
                    dtype.into_pyobject(py)?.into_any(),
                ],
            )
        })
        .collect()
}

#[pymethods]
impl Model {
    /// Loads the artifact at `path`; `threads` per run (None: one per core).
    #[new]
    #[pyo3(signature = (path, threads = None))]
    fn new(py: Python<'_>, path: PathBuf, threads: Option<usize>) -> PyResult<Self> {
        let model = py
            .detach(|| secc_runtime::Model::load(&path))
            .map_err(runtime_error)?;
        Ok(Model {
            model,
            threads: threads.unwrap_or(0),
            sessions: Mutex::new(Vec::new()),
        })
    }

    /// `[(name, shape, dtype)]`; a symbolic dimension is its name (e.g. "N").
    fn inputs<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        io_list(py, self.model.inputs())
    }

    /// `[(name, shape, dtype)]` of the outputs.
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        io_list(py, self.model.outputs())
    }

    /// The model's (ONNX graph's) name.
    #[getter]
    fn name(&self) -> String {
        self.model.name().to_string()
    }

    /// Threads per run (0: one per core).
    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }

    /// Runs on `{name: array}` (float32, C-contiguous) and returns `{name: array}`: new
    /// arrays, or with `out` the caller's own (float32, C-contiguous, writeable, of the
    /// outputs' shapes), which the kernels write in place.
    #[pyo3(signature = (inputs, out = None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyDict>,
        out: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let arrays = self.arrays(inputs)?;
        let views = Self::views(&arrays)?;
        let mut s = self.session()?;
        let r = match out {
            Some(o) => self.run_into_arrays(py, &mut s, &views, o),
            None => self.run_and_copy(py, &mut s, &views),
        };
        self.give_back(s);
        r
    }

    /// Latency of the run alone (no Python in the loop): `iters` runs after `warmup`,
    /// `{"median_us", "mean_us", "min_us", "p90_us"}`.
    #[pyo3(signature = (inputs, iters = 100, warmup = 10))]
    fn bench<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyDict>,
        iters: usize,
        warmup: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let arrays = self.arrays(inputs)?;
        let views = Self::views(&arrays)?;
        let mut s = self.session()?;
        let r = py.detach(|| s.bench(&views, warmup, iters.max(1)));
        self.give_back(s);
        let st = r.map_err(runtime_error)?;
        let d = PyDict::new(py);
        let n = st.latencies_us.len() as f64;
        d.set_item("median_us", st.percentile(50.0))?;
        d.set_item("mean_us", st.latencies_us.iter().sum::<f64>() / n)?;
        d.set_item("min_us", st.percentile(0.0))?;
        d.set_item("p90_us", st.percentile(90.0))?;
        Ok(d)
    }
}

#[pymodule]
fn _secc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_class::<Model>()?;
    m.add("SeccError", py.get_type::<SeccError>())?;
    m.add("CompileError", py.get_type::<CompileError>())?;
    m.add("LoadError", py.get_type::<LoadError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
