//! `secc check`: compiles a model in memory, runs the artifact (secc-runtime) and the
//! reference interpreter (`secc_ir::interp`, on the graph as imported) on the same inputs,
//! and reports per output the largest absolute and relative error. Inputs are random with
//! fixed seeds (batch 1 and 3 when the model has a symbolic dimension), or an ONNX-style test
//! directory (`input_*.pb|.npy`, `output_*.pb|.npy`, as `onnx_test_runner` reads).
use crate::inputs;
use anyhow::{bail, Context, Result};
use secc_ir::interp;
use secc_ir::{Dim, Graph};
use secc_runtime::Tensor;
use std::path::{Path, PathBuf};

/// One comparison of one output.
pub struct OutputError {
    /// output name
    pub name: String,
    /// shape compared
    pub shape: Vec<usize>,
    /// max |got - want|
    pub max_abs: f64,
    /// max |got - want| / (1 + |want|)
    pub max_rel: f64,
}

/// The comparisons of one input set.
pub struct Case {
    /// what the inputs were (`random, batch 3` or the test directory)
    pub label: String,
    /// per output
    pub outputs: Vec<OutputError>,
}

/// Random inputs for the imported graph: symbols of a leading axis bound to `batch`,
/// the others (image sizes) to [`SPATIAL`].
fn random_inputs(g: &Graph, batch: u64) -> Result<Vec<Tensor>> {
    let syms = binding(g, batch);
    g.inputs
        .iter()
        .zip(1u64..)
        .map(|((name, id), seed)| {
            let ty = &g.node(*id).outputs[0];
            let shape = ty
                .eval(&syms)
                .with_context(|| format!("input {name:?}: shape {} has no value", ty))?;
            inputs::random(shape, seed)
        })
        .collect()
}

/// The extent `check` gives a symbolic dimension that is not a batch.
pub const SPATIAL: u64 = 32;

/// One value per symbol: `batch` for a symbol on an input's axis 0, [`SPATIAL`] otherwise.
fn binding(g: &Graph, batch: u64) -> Vec<u64> {
    let mut syms = vec![SPATIAL; g.sym_names.len()];
    for (_, id) in &g.inputs {
        if let Some(Dim::Sym(s, _)) = g.node(*id).outputs[0].shape.first() {
            syms[s.0 as usize] = batch;
        }
    }
    syms
}

fn to_interp(t: &Tensor) -> interp::Tensor {
    match t.dtype {
        secc_runtime::DType::F32 => interp::Tensor::new(t.shape.clone(), t.data.clone()),
        secc_runtime::DType::I64 => interp::Tensor::new_i64(t.shape.clone(), t.ints.clone()),
    }
}

/// Expected values as f64, whatever the element type.
fn values(shape: &[usize], f: &[f32], i: &[i64]) -> (Vec<usize>, Vec<f64>) {
    let v = if i.is_empty() {
        f.iter().map(|&x| x as f64).collect()
    } else {
        i.iter().map(|&x| x as f64).collect()
    };
    (shape.to_vec(), v)
}

fn compare(name: &str, got: &Tensor, want: (Vec<usize>, Vec<f64>)) -> Result<OutputError> {
    if got.shape != want.0 {
        bail!(
            "output {name:?}: the artifact returned shape {:?}, the reference {:?}",
            got.shape,
            want.0
        );
    }
    let (_, g) = values(&got.shape, &got.data, &got.ints);
    let (mut max_abs, mut max_rel) = (0f64, 0f64);
    for (a, b) in g.iter().zip(&want.1) {
        let d = (a - b).abs();
        // NaN where the reference is finite counts as infinitely wrong
        let d = if d.is_nan() && !(a.is_nan() && b.is_nan()) {
            f64::INFINITY
        } else if d.is_nan() {
            0.0
        } else {
            d
        };
        max_abs = max_abs.max(d);
        max_rel = max_rel.max(d / (1.0 + b.abs()));
    }
    Ok(OutputError {
        name: name.into(),
        shape: got.shape.clone(),
        max_abs,
        max_rel,
    })
}

/// Runs the artifact and the interpreter on `ins` and compares every output.
pub fn random_case(
    session: &mut secc_runtime::Session,
    reference: &Graph,
    batch: Option<u64>,
) -> Result<Case> {
    let ins = random_inputs(reference, batch.unwrap_or(1))?;
    let got = session.run(&ins).context("running the artifact")?;
    let iins: Vec<interp::Tensor> = ins.iter().map(to_interp).collect();
    let want = interp::run(reference, &iins).context("running the reference interpreter")?;
    let mut outputs = vec![];
    for ((name, _), (g, w)) in reference.outputs.iter().zip(got.iter().zip(&want)) {
        outputs.push(compare(name, g, values(&w.shape, &w.data, &w.ints))?);
    }
    Ok(Case {
        label: match batch {
            Some(b) => format!("random inputs, batch {b}"),
            None => "random inputs".into(),
        },
        outputs,
    })
}

/// A tensor file: `.pb` (a serialized TensorProto) or `.npy`.
fn read_tensor(p: &Path) -> Result<(Vec<usize>, Vec<f32>, Vec<i64>)> {
    if p.extension().is_some_and(|e| e == "npy") {
        let t = crate::npy::read(p)?.tensor;
        return Ok((t.shape, t.data, vec![]));
    }
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(
        match secc_onnx::read_tensor_proto(&bytes).with_context(|| p.display().to_string())? {
            secc_onnx::TensorFile::F32 { shape, data, .. } => (shape, data, vec![]),
            secc_onnx::TensorFile::I64 { shape, data, .. } => (shape, vec![], data),
        },
    )
}

/// `PREFIX_0.pb|.npy`, `PREFIX_1...` in `dir`, in index order.
fn numbered(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v = vec![];
    for i in 0.. {
        let pb = dir.join(format!("{prefix}_{i}.pb"));
        let npy = dir.join(format!("{prefix}_{i}.npy"));
        match (pb.exists(), npy.exists()) {
            (true, _) => v.push(pb),
            (_, true) => v.push(npy),
            _ => break,
        }
    }
    v
}

/// The test directories under `dir`: `dir` itself if it holds `input_0`, else its
/// `test_data_set_*` folders.
pub fn reference_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !numbered(dir, "input").is_empty() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !numbered(p, "input").is_empty())
        .collect();
    v.sort();
    if v.is_empty() {
        bail!(
            "{} holds no input_0.pb/.npy, nor test_data_set_* folders that do",
            dir.display()
        );
    }
    Ok(v)
}

/// Runs the artifact on one test directory and compares with its expected outputs.
pub fn reference_case(session: &mut secc_runtime::Session, dir: &Path) -> Result<Case> {
    let model = session.model().clone();
    let ins = numbered(dir, "input");
    let outs = numbered(dir, "output");
    let names = model.input_names();
    if ins.len() != names.len() {
        bail!(
            "{}: {} input file(s) for a model with {} input(s)",
            dir.display(),
            ins.len(),
            names.len()
        );
    }
    let mut tensors = vec![];
    for p in &ins {
        let (shape, data, ints) = read_tensor(p)?;
        if !ints.is_empty() {
            bail!("{}: integer inputs are not supported", p.display());
        }
        tensors.push(Tensor::new(shape, data)?);
    }
    let got = session.run(&tensors).context("running the artifact")?;
    let onames = model.output_names();
    if outs.len() != got.len() {
        bail!(
            "{}: {} expected output file(s) for a model with {} output(s)",
            dir.display(),
            outs.len(),
            got.len()
        );
    }
    let mut outputs = vec![];
    for ((p, g), n) in outs.iter().zip(got).zip(&onames) {
        let (shape, f, i) = read_tensor(p)?;
        outputs.push(compare(n, g, values(&shape, &f, &i))?);
    }
    Ok(Case {
        label: dir.display().to_string(),
        outputs,
    })
}

/// Changes the largest weight of the graph (adds 0.5 to every element), for the test that
/// `check` catches a wrong artifact.
pub fn perturb_weights(g: &mut Graph) {
    let Some((id, c)) = g
        .node_ids()
        .into_iter()
        .filter_map(|n| g.const_of(n.into()).map(|c| (n, c.clone())))
        .max_by_key(|(_, c)| c.data.len())
    else {
        return;
    };
    let data = c.data.iter().map(|v| v + 0.5).collect();
    let origin = g.node(id).origin.clone();
    let new = g.add_const(secc_ir::ConstData::new(c.shape.clone(), data), origin);
    g.replace_all_uses(id.into(), new);
}
