//! The importer: model -> graph. This module walks the model (inputs, nodes, outputs) and
//! holds the helpers every handler shares (operands, constants, adding nodes); the handlers,
//! one function per ONNX op, live in per-family modules and are found through `registry`.
use crate::attrs::NodeCx;
use crate::error::{ImportError, NodeError};
use crate::tensor::{decode, dtype_name, ConstVal};
use onnx_protobuf::{Message, ModelProto, ValueInfoProto};
use secc_ir::{ConstData, Dim, Graph, Op, Shape, TensorType, ValueId};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod constant;
mod conv;
mod data;
mod elementwise;
mod matmul;
mod norm;
mod pool;
mod registry;
mod reshape;
mod resize;
mod shape;
pub use registry::SUPPORTED_OPS;
use shape::IV;

/// Oldest default-domain opset accepted.
pub const MIN_OPSET: i64 = 7;
/// Newest default-domain opset accepted.
pub const MAX_OPSET: i64 = 25;

/// Import options.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Bind every symbolic dimension named here to a fixed extent (e.g. `N=1`).
    pub fixed_dims: BTreeMap<String, u64>,
}

/// Reads and imports an ONNX file; external data is resolved relative to its folder.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    // the parent of a bare file name is "", which names no folder: it is the current one
    let base = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("."),
    };
    import_bytes(&bytes, Some(base), opts)
}

/// Imports a serialized `ModelProto`. `base` is the folder holding external data, if any.
pub fn import_bytes(
    bytes: &[u8],
    base: Option<&Path>,
    opts: &ImportOptions,
) -> Result<Graph, ImportError> {
    let model =
        ModelProto::parse_from_bytes(bytes).map_err(|e| ImportError::Parse(e.to_string()))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ImportError::Model("model has no graph".into()))?;
    if graph.node.is_empty() && graph.output.is_empty() {
        return Err(ImportError::Model(
            "graph is empty (no nodes, no outputs): is this really an ONNX model?".into(),
        ));
    }
    let mut opset = None;
    for o in &model.opset_import {
        if o.domain.is_empty() || o.domain == "ai.onnx" {
            opset = Some(o.version);
        }
    }
    let opset = opset
        .ok_or_else(|| ImportError::Model("no default-domain opset in opset_import".into()))?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(ImportError::Model(format!(
            "opset {opset} is not supported (supported: {MIN_OPSET}..={MAX_OPSET})"
        )));
    }
    let mut im = Importer {
        g: Graph::new(if graph.name.is_empty() {
            "main"
        } else {
            &graph.name
        }),
        opset,
        base,
        vals: BTreeMap::new(),
        ints: BTreeMap::new(),
        floats: BTreeMap::new(),
        float_nodes: BTreeMap::new(),
        poisoned: BTreeSet::new(),
        dim_names: BTreeSet::new(),
    };
    for t in &graph.initializer {
        match decode(t, base) {
            Ok(ConstVal::F32(s, d)) => {
                im.floats.insert(t.name.clone(), (s, d));
            }
            Ok(ConstVal::I64(s, d)) => {
                im.ints
                    .insert(t.name.clone(), (s, d.into_iter().map(IV::K).collect()));
            }
            Err(msg) => {
                return Err(ImportError::Tensor {
                    name: t.name.clone(),
                    msg,
                });
            }
        }
    }
    for vi in &graph.input {
        if im.floats.contains_key(&vi.name) || im.ints.contains_key(&vi.name) {
            continue; // an initializer listed as input (IR < 4 style): it is a constant
        }
        let ty = im.input_type(vi, opts)?;
        let v = im.g.add_input(vi.name.clone(), ty);
        im.vals.insert(vi.name.clone(), v);
    }
    check_fixed_dims(opts, &im.dim_names)?;
    let mut unsupported = Vec::new();
    for (i, n) in graph.node.iter().enumerate() {
        let cx = NodeCx::new(n, i);
        if n.input.iter().any(|x| im.poisoned.contains(x)) {
            // downstream of an unsupported op: it cannot be imported, but is still reported
            // if it is unsupported itself, so the user sees every unsupported op at once
            if !is_default_domain(&n.domain) || registry::handler(&n.op_type).is_none() {
                unsupported.push(cx.err(unsupported_msg(&n.domain)));
            }
            for o in &n.output {
                im.poisoned.insert(o.clone());
            }
            continue;
        }
        match im.node(&cx) {
            Ok(()) => {}
            Err(Failure::Unsupported(e)) => {
                unsupported.push(e);
                for o in &n.output {
                    im.poisoned.insert(o.clone());
                }
            }
            Err(Failure::Error(e)) => return Err(ImportError::Node(e)),
        }
    }
    if !unsupported.is_empty() {
        return Err(ImportError::Unsupported(unsupported));
    }
    for vi in &graph.output {
        let et = vi
            .type_
            .as_ref()
            .filter(|t| t.has_tensor_type())
            .map(|t| t.tensor_type().elem_type);
        // bool results (comparisons) are carried and returned as float32 0.0 / 1.0
        if let Some(et) = et.filter(|&t| !matches!(t, 0 | 1 | 7 | 9)) {
            return Err(ImportError::Model(format!(
                "graph output {:?}: element type {} is not supported (only float32, bool and int64)",
                vi.name,
                dtype_name(et)
            )));
        }
        // a bool output computed entirely at compile time (comparisons of constants)
        if et == Some(9) {
            if let Some((s, d)) = im.ints.get(&vi.name) {
                let vals: Option<Vec<f32>> = d
                    .iter()
                    .map(|v| match v {
                        IV::K(k) => Some(f32::from(*k != 0)),
                        IV::S(..) => None,
                    })
                    .collect();
                if let Some(vals) = vals {
                    let c =
                        im.g.add_const(ConstData::new(s.clone(), vals), Some(vi.name.clone()));
                    im.g.add_output(vi.name.clone(), c);
                    continue;
                }
            }
        }
        let v = match im.int_output(&vi.name, et)? {
            Some(v) => v,
            None => im
                .float_value(&vi.name)
                .map_err(|m| ImportError::Model(format!("graph output {:?}: {m}", vi.name)))?,
        };
        let is_i64 = im.g.ty(v).dtype == secc_ir::DType::I64;
        if et.is_some_and(|t| t != 0 && (t == 7) != is_i64) {
            return Err(ImportError::Model(format!(
                "graph output {:?}: declared {} but computed as {}",
                vi.name,
                dtype_name(et.unwrap_or(0)),
                im.g.ty(v).display(&im.g.sym_names)
            )));
        }
        im.g.add_output(vi.name.clone(), v);
    }
    Ok(im.g)
}

/// Every fixed dimension must name a symbolic dimension of the inputs and be at least 1: a
/// misspelt name would otherwise be ignored silently.
fn check_fixed_dims(opts: &ImportOptions, known: &BTreeSet<String>) -> Result<(), ImportError> {
    let list = || {
        if known.is_empty() {
            "the model has no symbolic dimensions".to_string()
        } else {
            let names: Vec<String> = known.iter().map(|n| format!("{n:?}")).collect();
            format!("the model's symbolic dimensions: {}", names.join(", "))
        }
    };
    for (name, &v) in &opts.fixed_dims {
        if !known.contains(name) {
            return Err(ImportError::Options(format!(
                "fixed dimension {name:?} does not occur in the model ({})",
                list()
            )));
        }
        if v == 0 {
            return Err(ImportError::Options(format!(
                "fixed dimension {name:?} = 0: extents must be at least 1"
            )));
        }
    }
    Ok(())
}

fn is_default_domain(d: &str) -> bool {
    d.is_empty() || d == "ai.onnx"
}

fn unsupported_msg(domain: &str) -> String {
    if is_default_domain(domain) {
        "op is not supported".into()
    } else {
        format!("op domain {domain:?} is not supported")
    }
}

/// A node that is valid ONNX but not supported here (listed with the other unsupported nodes).
fn unsupported(cx: &NodeCx, m: impl Into<String>) -> Failure {
    Failure::Unsupported(cx.err(m))
}

enum Failure {
    Unsupported(NodeError),
    Error(NodeError),
}

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Self {
        Failure::Error(e)
    }
}

struct Importer<'b> {
    g: Graph,
    opset: i64,
    base: Option<&'b Path>,
    vals: BTreeMap<String, ValueId>,
    /// integer tensors (shapes, axes), possibly holding symbolic values such as the batch
    ints: BTreeMap<String, (Vec<usize>, Vec<IV>)>,
    floats: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    float_nodes: BTreeMap<String, ValueId>,
    poisoned: BTreeSet<String>,
    /// names of the graph inputs' symbolic dimensions (fixed or not), for `check_fixed_dims`
    dim_names: BTreeSet<String>,
}

type R<T> = Result<T, Failure>;

impl Importer<'_> {
    fn input_type(
        &mut self,
        vi: &ValueInfoProto,
        opts: &ImportOptions,
    ) -> Result<TensorType, ImportError> {
        let bad = |m: String| ImportError::Model(format!("graph input {:?}: {m}", vi.name));
        let tt = vi
            .type_
            .as_ref()
            .filter(|t| t.has_tensor_type())
            .ok_or_else(|| bad("not a tensor".into()))?
            .tensor_type();
        if tt.elem_type != 1 {
            return Err(bad(format!(
                "element type {} is not supported (only float32)",
                dtype_name(tt.elem_type)
            )));
        }
        let shape = tt
            .shape
            .as_ref()
            .ok_or_else(|| bad("has no shape (rank must be known)".into()))?;
        let mut dims = Shape::new();
        for (axis, d) in shape.dim.iter().enumerate() {
            if d.has_dim_value() && d.dim_value() == 0 {
                return Err(bad(format!(
                    "axis {axis} has extent 0; zero-size tensors are not supported"
                )));
            }
            if d.has_dim_value() && d.dim_value() > 0 {
                dims.push(Dim::Known(d.dim_value() as u64));
            } else {
                // `?`, `-1` and unnamed dims are anonymous: each its own symbol, named
                // after its input and axis (Paddle2ONNX writes `?` for H and W alike)
                let p = d.dim_param();
                let name = if d.has_dim_param() && !matches!(p, "" | "?" | "-1") {
                    p.to_string()
                } else {
                    format!("{}.{axis}", vi.name)
                };
                self.dim_names.insert(name.clone());
                match opts.fixed_dims.get(&name) {
                    Some(&v) => dims.push(Dim::Known(v)),
                    None => dims.push(Dim::Sym(self.g.sym(&name), 1)),
                }
            }
        }
        let ty = TensorType::f32(dims);
        ty.check_size().map_err(bad)?;
        Ok(ty)
    }

    /// A graph output held as an integer tensor (a shape the model returns, known at
    /// compile time up to the batch): an `int_tensor` node, or `None` if it is not one.
    fn int_output(&mut self, name: &str, et: Option<i32>) -> Result<Option<ValueId>, ImportError> {
        let declared_int = matches!(et, None | Some(0) | Some(7));
        let Some((shape, data)) = self.ints.get(name).filter(|_| declared_int) else {
            return Ok(None);
        };
        if self.vals.contains_key(name) || self.floats.contains_key(name) {
            return Ok(None);
        }
        let values = data
            .iter()
            .map(|v| match *v {
                IV::K(k) => secc_ir::IntElem::Known(k),
                IV::S(d) => secc_ir::IntElem::Dim(d),
            })
            .collect();
        if shape.contains(&0) {
            return Err(ImportError::Model(format!(
                "graph output {name:?}: shape {shape:?} has a zero extent; zero-size tensors are not supported"
            )));
        }
        let op = Op::IntTensor {
            shape: shape.iter().map(|&d| d as u64).collect(),
            values,
        };
        let v = self
            .g
            .add_node(op, &[], Some(name.to_string()))
            .map_err(|e| ImportError::Model(format!("graph output {name:?}: {e}")))?;
        Ok(Some(v))
    }

    /// The float value with this name (materialising an initializer on first use).
    fn float_value(&mut self, name: &str) -> Result<ValueId, String> {
        if let Some(v) = self.vals.get(name).or_else(|| self.float_nodes.get(name)) {
            return Ok(*v);
        }
        if let Some((s, d)) = self.floats.get(name) {
            let v = self
                .g
                .add_const(ConstData::new(s.clone(), d.clone()), Some(name.to_string()));
            self.float_nodes.insert(name.to_string(), v);
            return Ok(v);
        }
        if self.ints.contains_key(name) {
            return Err(format!(
                "{name:?} is an integer tensor; only float32 tensors are supported as data"
            ));
        }
        Err(format!("{name:?} is not defined before use"))
    }

    fn operand(&mut self, cx: &NodeCx, i: usize) -> R<ValueId> {
        let name = cx
            .input(i)
            .ok_or_else(|| cx.err(format!("input {i} is missing")))?;
        self.float_value(name)
            .map_err(|m| Failure::Error(cx.err(format!("input {i}: {m}"))))
    }

    fn const_ints(&self, cx: &NodeCx, i: usize, what: &str) -> R<Vec<i64>> {
        let name = cx
            .input(i)
            .ok_or_else(|| cx.err(format!("input {i} ({what}) is missing")))?;
        match self.ints.get(name) {
            Some((_, d)) => d
                .iter()
                .map(|v| match v {
                    IV::K(k) => Ok(*k),
                    IV::S(..) => Err(cx.err(format!("input {i} ({what}) depends on a symbolic dimension; it must be a constant")).into()),
                })
                .collect(),
            None => Err(cx.err(format!("input {i} ({what}) must be a constant integer tensor; {name:?} is computed at run time, which is not supported")).into()),
        }
    }

    fn const_scalar_f32(&self, cx: &NodeCx, i: usize, what: &str) -> R<Option<f32>> {
        let Some(name) = cx.input(i) else {
            return Ok(None);
        };
        if let Some(v) = self.float_nodes.get(name).or_else(|| self.vals.get(name)) {
            if let Some(c) = self.g.const_of(*v) {
                if c.data.len() == 1 {
                    return Ok(Some(c.data[0]));
                }
            }
        }
        match self.floats.get(name) {
            Some((_, d)) if d.len() == 1 => Ok(Some(d[0])),
            Some(_) => Err(cx.err(format!("input {i} ({what}) must be a scalar")).into()),
            None => Err(cx.err(format!("input {i} ({what}) must be a constant; {name:?} is computed at run time, which is not supported")).into()),
        }
    }

    /// Rank of float operand `i`, if it is defined.
    fn rank_of(&mut self, cx: &NodeCx, i: usize) -> Option<usize> {
        let name = cx.input(i)?;
        let v = self.float_value(name).ok()?;
        Some(self.shape_of(v).len())
    }

    fn shape_of(&self, v: ValueId) -> Shape {
        self.g.ty(v).shape.clone()
    }

    fn add(&mut self, cx: &NodeCx, op: Op, ins: &[ValueId]) -> R<()> {
        let syms = self.g.sym_names.clone();
        let v = self
            .g
            .add_node(op, ins, Some(cx.name.clone()))
            .map_err(|e| {
                let mut m = match e {
                    secc_ir::IrError::AtNode { source, .. } => source.to_string(),
                    e => e.to_string(),
                };
                // a symbolic height/width (dynamic image size) cannot size a kernel
                if m.contains("must be a known extent") && !syms.is_empty() {
                    m.push_str(&format!(
                        "; the model has symbolic dimensions ({}): give the non-batch ones values with --fix-dim NAME=VALUE",
                        syms.join(", ")
                    ));
                }
                cx.err(m)
            })?;
        self.def(cx, v)
    }

    /// Name of the node's (first) output.
    fn out_name(cx: &NodeCx) -> R<String> {
        Ok(cx
            .node
            .output
            .first()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| cx.err("has no output"))?
            .clone())
    }

    fn def(&mut self, cx: &NodeCx, v: ValueId) -> R<()> {
        self.vals.insert(Self::out_name(cx)?, v);
        Ok(())
    }

    /// Imports one node: ops of other domains are unsupported, computations on integer
    /// (shape) tensors are evaluated by `int_node`, every other op by its handler in the
    /// registry.
    fn node(&mut self, cx: &NodeCx) -> R<()> {
        if !is_default_domain(&cx.node.domain) {
            return Err(Failure::Unsupported(
                cx.err(unsupported_msg(&cx.node.domain)),
            ));
        }
        if self.is_int_node(cx) {
            return self.int_node(cx);
        }
        match registry::handler(cx.op()) {
            Some(import) => import(self, cx),
            None => Err(Failure::Unsupported(cx.err(unsupported_msg("")))),
        }
    }

    /// A scalar float operand that may be a constant or computed at run time: `None` when
    /// absent, `Ok(value)` when constant, `Err(value id)` (of rank 0) otherwise.
    fn scalar_operand(
        &mut self,
        cx: &NodeCx,
        i: usize,
        what: &str,
    ) -> R<Option<Result<f32, ValueId>>> {
        if cx.input(i).is_none() {
            return Ok(None);
        }
        if let Ok(Some(c)) = self.const_scalar_f32(cx, i, what) {
            return Ok(Some(Ok(c)));
        }
        let v = self.operand(cx, i)?;
        let t = self.g.ty(v).clone();
        if t.numel() != Some(Dim::Known(1)) {
            return Err(cx
                .err(format!(
                    "input {i} ({what}) must be a scalar, got {}",
                    t.display(&self.g.sym_names)
                ))
                .into());
        }
        if t.rank() == 0 {
            return Ok(Some(Err(v)));
        }
        let s = self
            .g
            .add_node(
                Op::Reshape {
                    shape: Shape::new(),
                },
                &[v],
                Some(cx.name.clone()),
            )
            .map_err(|e| cx.err(e.to_string()))?;
        Ok(Some(Err(s)))
    }

    fn axes_input_or_attr(&self, cx: &NodeCx, attr_until: i64) -> R<Option<Vec<i64>>> {
        if self.opset < attr_until {
            Ok(cx.ints("axes")?)
        } else if cx.input(1).is_some() {
            Ok(Some(self.const_ints(cx, 1, "axes")?))
        } else {
            Ok(None)
        }
    }

    fn norm_axes(&self, cx: &NodeCx, axes: &[i64], rank: usize) -> R<Vec<usize>> {
        let mut out = Vec::new();
        for &a in axes {
            let n = cx.axis("axes", a, rank)?;
            if out.contains(&n) {
                return Err(cx.attr_err("axes", format!("axis {a} repeated")).into());
            }
            out.push(n);
        }
        out.sort();
        Ok(out)
    }
}
