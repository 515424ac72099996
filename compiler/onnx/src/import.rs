//! The importer: model -> graph, one function per ONNX op.
use crate::attrs::NodeCx;
use crate::error::{ImportError, NodeError};
use crate::tensor::{decode, dtype_name, ConstVal};
use onnx_protobuf::{Message, ModelProto, NodeProto, ValueInfoProto};
use secc_ir::{
    Activation, BinaryOp, ConstData, Conv2dAttrs, Dim, GemmAttrs, Graph, Op, Shape, TensorType,
    ValueId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod data;
mod shape;
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
            if !is_default_domain(&n.domain) || !SUPPORTED_OPS.contains(&n.op_type.as_str()) {
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

/// Every ONNX op type (default domain) the importer handles.
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "Clip",
    "Constant",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "MaxPool",
    "AveragePool",
    "BatchNormalization",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "MatMul",
    "Mul",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Squeeze",
    "Sub",
    "Unsqueeze",
    // shape computations only (integer tensors, evaluated at import, batch kept symbolic)
    "Shape",
    "Gather",
    "Concat",
    "Slice",
    "Cast",
    "ConstantOfShape",
    "LeakyRelu",
    "Elu",
    "Tanh",
    "Exp",
    "Log",
    "Sqrt",
    "Neg",
    "Abs",
    "Erf",
    "PRelu",
    "Min",
    "Max",
    "Transpose",
    "Softmax",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "Pad",
    "LayerNormalization",
    "Pow",
    "Split",
    "Expand",
    "Where",
    "Equal",
    "Less",
    "Greater",
    "Resize",
    "Upsample",
    "ConvTranspose",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Not",
    "CastLike",
    "Reciprocal",
    "Size",
    "Softplus",
    "Softsign",
    "Selu",
    "Celu",
    "ThresholdedRelu",
    "Mish",
    "Gelu",
    "Ceil",
    "Floor",
    "Round",
    "Sign",
    "Sum",
    "Mean",
];

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

/// The extents `d * (k - 1) + 1` dilated windows cover, each within the size limit.
fn window_extents(cx: &NodeCx, k: [u64; 2], d: [u64; 2]) -> Result<[u64; 2], NodeError> {
    let one = |i: usize| {
        secc_ir::dilated(k[i], d[i])
            .filter(|&v| v <= secc_ir::MAX_ELEMENTS)
            .ok_or_else(|| {
                cx.err(format!(
                    "a window of {} taps at dilation {} (axis {}) is empty or exceeds the size limit 2^32",
                    k[i],
                    d[i],
                    2 + i
                ))
            })
    };
    Ok([one(0)?, one(1)?])
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
                let name = if d.has_dim_param() && !d.dim_param().is_empty() {
                    d.dim_param().to_string()
                } else if axis == 0 {
                    "N".to_string()
                } else {
                    format!("{}_dim{axis}", vi.name)
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
                IV::S(s, k) => secc_ir::IntElem::Sym(s, k),
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

    fn node(&mut self, cx: &NodeCx) -> R<()> {
        let n: &NodeProto = cx.node;
        if !is_default_domain(&n.domain) {
            return Err(Failure::Unsupported(cx.err(unsupported_msg(&n.domain))));
        }
        if self.is_int_node(cx) {
            return self.int_node(cx);
        }
        match cx.op() {
            "Constant" => self.constant(cx),
            "Identity" => {
                let x = self.operand(cx, 0)?;
                self.add(cx, Op::Identity, &[x])
            }
            "Dropout" => {
                if let Some(name) = cx.input(2) {
                    let training = self
                        .ints
                        .get(name)
                        .map(|(_, d)| d.first().copied().unwrap_or(IV::K(0)));
                    if training != Some(IV::K(0)) {
                        return Err(cx.err("input 2 (training_mode) must be a constant false; training-mode Dropout is not supported").into());
                    }
                }
                let x = self.operand(cx, 0)?;
                if let Some(mask) = cx.node.output.get(1).filter(|s| !s.is_empty()) {
                    // inference mode keeps every element: an all-true mask (as 1.0)
                    let one = self
                        .g
                        .add_const(ConstData::new(vec![], vec![1.0]), Some(cx.name.clone()));
                    let m = self
                        .g
                        .add_node(
                            Op::Expand {
                                shape: self.shape_of(x),
                            },
                            &[one],
                            Some(cx.name.clone()),
                        )
                        .map_err(|e| cx.err(e.to_string()))?;
                    self.vals.insert(mask.clone(), m);
                }
                self.add(cx, Op::Identity, &[x])
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let op = match cx.op() {
                    "Add" => BinaryOp::Add,
                    "Sub" => BinaryOp::Sub,
                    "Mul" => BinaryOp::Mul,
                    _ => BinaryOp::Div,
                };
                let (a, b) = (self.operand(cx, 0)?, self.operand(cx, 1)?);
                self.add(cx, Op::Binary(op), &[a, b])
            }
            "Relu" => self.act(cx, Activation::Relu),
            "LeakyRelu" => {
                let alpha = cx.float_or("alpha", 0.01)?;
                self.act(cx, Activation::LeakyRelu { alpha })
            }
            "Elu" => {
                let alpha = cx.float_or("alpha", 1.0)?;
                self.act(cx, Activation::Elu { alpha })
            }
            "Tanh" => self.act(cx, Activation::Tanh),
            "Exp" => self.act(cx, Activation::Exp),
            "Log" => self.act(cx, Activation::Log),
            "Sqrt" => self.act(cx, Activation::Sqrt),
            "Neg" => self.act(cx, Activation::Neg),
            "Abs" => self.act(cx, Activation::Abs),
            "Erf" => self.act(cx, Activation::Erf),
            "Softplus" => self.act(cx, Activation::Softplus),
            "Softsign" => self.act(cx, Activation::Softsign),
            "Mish" => self.act(cx, Activation::Mish),
            "Ceil" => self.act(cx, Activation::Ceil),
            "Floor" => self.act(cx, Activation::Floor),
            "Round" => self.act(cx, Activation::Round),
            "Sign" => self.act(cx, Activation::Sign),
            "Selu" => {
                let alpha = cx.float_or("alpha", 1.673_263_2)?;
                let gamma = cx.float_or("gamma", 1.050_701)?;
                self.act(cx, Activation::Selu { alpha, gamma })
            }
            "Celu" => {
                let alpha = cx.float_or("alpha", 1.0)?;
                self.act(cx, Activation::Celu { alpha })
            }
            "ThresholdedRelu" => {
                let alpha = cx.float_or("alpha", 1.0)?;
                self.act(cx, Activation::ThresholdedRelu { alpha })
            }
            "Gelu" => {
                let tanh = match cx.string("approximate")?.as_deref().unwrap_or("none") {
                    "none" => false,
                    "tanh" => true,
                    other => {
                        return Err(cx
                            .attr_err("approximate", format!("{other:?} is not valid"))
                            .into())
                    }
                };
                self.act(cx, Activation::Gelu { tanh })
            }
            "Sum" | "Mean" => {
                let n = cx.node.input.len();
                let mut acc = self.operand(cx, 0)?;
                for i in 1..n {
                    let b = self.operand(cx, i)?;
                    acc = self
                        .g
                        .add_node(Op::Binary(BinaryOp::Add), &[acc, b], Some(cx.name.clone()))
                        .map_err(|e| cx.err(e.to_string()))?;
                }
                if cx.op() == "Mean" && n > 1 {
                    let k = self.g.add_const(
                        ConstData::new(vec![], vec![n as f32]),
                        Some(cx.name.clone()),
                    );
                    return self.add(cx, Op::Binary(BinaryOp::Div), &[acc, k]);
                }
                self.add(cx, Op::Identity, &[acc])
            }
            "PRelu" => {
                let (a, b) = (self.operand(cx, 0)?, self.operand(cx, 1)?);
                self.add(cx, Op::Binary(BinaryOp::PRelu), &[a, b])
            }
            "Min" | "Max" => {
                let op = if cx.op() == "Min" {
                    BinaryOp::Min
                } else {
                    BinaryOp::Max
                };
                let n = cx.node.input.len();
                if n == 0 {
                    return Err(cx.err("needs at least one input").into());
                }
                let mut acc = self.operand(cx, 0)?;
                if n == 1 {
                    return self.add(cx, Op::Identity, &[acc]);
                }
                for i in 1..n {
                    let b = self.operand(cx, i)?;
                    if i + 1 == n {
                        return self.add(cx, Op::Binary(op), &[acc, b]);
                    }
                    acc = self
                        .g
                        .add_node(Op::Binary(op), &[acc, b], Some(cx.name.clone()))
                        .map_err(|e| cx.err(e.to_string()))?;
                }
                unreachable!("loop returns on the last input")
            }
            "Sigmoid" => self.act(cx, Activation::Sigmoid),
            "HardSwish" => self.act(cx, Activation::HardSwish),
            "HardSigmoid" => {
                let alpha = cx.float_or("alpha", 0.2)?;
                let beta = cx.float_or("beta", 0.5)?;
                self.act(cx, Activation::HardSigmoid { alpha, beta })
            }
            "Clip" => self.clip(cx),
            "GlobalAveragePool" => {
                let x = self.operand(cx, 0)?;
                self.add(cx, Op::GlobalAvgPool, &[x])
            }
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" => self.reduce(cx),
            "Flatten" => {
                let x = self.operand(cx, 0)?;
                let s = self.shape_of(x);
                let axis = cx.int_or("axis", 1)?;
                let axis = if axis == s.len() as i64 {
                    s.len()
                } else {
                    cx.axis("axis", axis, s.len().max(1))?
                };
                let prod = |d: &[Dim]| d.iter().try_fold(Dim::Known(1), |a, &b| a.checked_mul(b));
                let (a, b) = (prod(&s[..axis]), prod(&s[axis..]));
                let (Some(a), Some(b)) = (a, b) else {
                    return Err(cx
                        .err("flattened extent would be a product of symbolic dimensions")
                        .into());
                };
                self.add(
                    cx,
                    Op::Reshape {
                        shape: [a, b].into_iter().collect(),
                    },
                    &[x],
                )
            }
            "Reshape" => self.reshape(cx),
            "Squeeze" => self.squeeze(cx),
            "Unsqueeze" => self.unsqueeze(cx),
            "Conv" | "MaxPool" | "AveragePool" | "ConvTranspose"
                if self.rank_of(cx, 0) == Some(3) =>
            {
                let run: fn(&mut Self, &NodeCx) -> R<()> = match cx.op() {
                    "Conv" => Self::conv,
                    "ConvTranspose" => Self::conv_transpose,
                    _ => Self::pool,
                };
                self.via_2d(cx, run)
            }
            "Conv" => self.conv(cx),
            "MaxPool" | "AveragePool" => self.pool(cx),
            "GlobalMaxPool" => {
                let x = self.operand(cx, 0)?;
                self.add(cx, Op::GlobalMaxPool, &[x])
            }
            "BatchNormalization" => self.batch_norm(cx),
            "Gemm" => {
                let a = self.operand(cx, 0)?;
                let b = self.operand(cx, 1)?;
                let mut ins = vec![a, b];
                if cx.input(2).is_some() {
                    ins.push(self.operand(cx, 2)?);
                }
                let attrs = GemmAttrs {
                    alpha: cx.float_or("alpha", 1.0)?,
                    beta: cx.float_or("beta", 1.0)?,
                    trans_a: cx.int_or("transA", 0)? != 0,
                    trans_b: cx.int_or("transB", 0)? != 0,
                };
                self.add(cx, Op::Gemm(attrs), &ins)
            }
            "MatMul" => {
                let (a, b) = (self.operand(cx, 0)?, self.operand(cx, 1)?);
                self.add(cx, Op::MatMul, &[a, b])
            }
            "Concat" => {
                let n = cx.node.input.len();
                let ins = (0..n)
                    .map(|i| self.operand(cx, i))
                    .collect::<Result<Vec<_>, _>>()?;
                let rank = self
                    .shape_of(
                        *ins.first()
                            .ok_or_else(|| cx.err("needs at least one input"))?,
                    )
                    .len();
                let axis = cx
                    .int("axis")?
                    .ok_or_else(|| cx.attr_err("axis", "is required"))?;
                let axis = cx.axis("axis", axis, rank)?;
                self.add(cx, Op::Concat { axis }, &ins)
            }
            "LayerNormalization" => self.layer_norm(cx),
            "Pow" => {
                let x = self.operand(cx, 0)?;
                let e = match self.const_scalar_f32(cx, 1, "Y (exponent)") {
                    Ok(Some(e)) => e,
                    Ok(None) => return Err(cx.err("input 1 (Y) is missing").into()),
                    Err(_) => return self.pow_general(cx, x),
                };
                let node = |s: &mut Self, op: Op, ins: &[ValueId]| {
                    s.g.add_node(op, ins, Some(cx.name.clone()))
                        .map_err(|err| Failure::Error(cx.err(err.to_string())))
                };
                match e {
                    1.0 => self.add(cx, Op::Identity, &[x]),
                    2.0 => self.add(cx, Op::Binary(BinaryOp::Mul), &[x, x]),
                    3.0 => {
                        let sq = node(self, Op::Binary(BinaryOp::Mul), &[x, x])?;
                        self.add(cx, Op::Binary(BinaryOp::Mul), &[sq, x])
                    }
                    0.5 => self.add(cx, Op::Act(Activation::Sqrt), &[x]),
                    -1.0 | -0.5 => {
                        let one = self
                            .g
                            .add_const(ConstData::new(vec![], vec![1.0]), Some(cx.name.clone()));
                        let d = if e == -1.0 {
                            x
                        } else {
                            node(self, Op::Act(Activation::Sqrt), &[x])?
                        };
                        self.add(cx, Op::Binary(BinaryOp::Div), &[one, d])
                    }
                    _ => self.pow_general(cx, x),
                }
            }
            "Pad" => {
                let x = self.operand(cx, 0)?;
                let r = self.shape_of(x).len();
                let raw = if self.opset < 11 {
                    cx.ints("pads")?
                        .ok_or_else(|| cx.attr_err("pads", "is required"))?
                } else {
                    self.const_ints(cx, 1, "pads")?
                };
                let axes: Vec<usize> = match cx.input(3) {
                    Some(_) => self
                        .const_ints(cx, 3, "axes")?
                        .iter()
                        .map(|&a| cx.axis("axes", a, r))
                        .collect::<Result<_, _>>()?,
                    None => (0..r).collect(),
                };
                if raw.len() != 2 * axes.len() {
                    return Err(cx
                        .err(format!(
                            "pads has {} values for {} axes",
                            raw.len(),
                            axes.len()
                        ))
                        .into());
                }
                if raw.iter().any(|&p| p < 0) {
                    return Err(cx.err("negative pads (cropping) are not supported").into());
                }
                if let Some(p) = raw.iter().find(|&&p| !crate::attrs::in_range(p, 0)) {
                    return Err(cx
                        .err(format!(
                            "pad {p} exceeds the size limit {}",
                            secc_ir::MAX_ELEMENTS
                        ))
                        .into());
                }
                let mut pads = vec![(0u64, 0u64); r];
                for (k, &a) in axes.iter().enumerate() {
                    pads[a] = (raw[k] as u64, raw[k + axes.len()] as u64);
                }
                let mut ins = vec![x];
                let mode = match cx.string("mode")?.as_deref().unwrap_or("constant") {
                    "constant" if self.opset < 11 => {
                        secc_ir::PadMode::Constant(cx.float_or("value", 0.0)?)
                    }
                    "constant" => match self.scalar_operand(cx, 2, "constant_value")? {
                        None => secc_ir::PadMode::Constant(0.0),
                        Some(Ok(v)) => secc_ir::PadMode::Constant(v),
                        Some(Err(v)) => {
                            ins.push(v);
                            secc_ir::PadMode::ConstantInput
                        }
                    },
                    "reflect" => secc_ir::PadMode::Reflect,
                    "edge" => secc_ir::PadMode::Edge,
                    other => {
                        return Err(cx
                            .attr_err("mode", format!("{other:?} is not supported"))
                            .into())
                    }
                };
                self.add(cx, Op::Pad { pads, mode }, &ins)
            }
            "Transpose" => {
                let x = self.operand(cx, 0)?;
                let r = self.shape_of(x).len();
                let perm = match cx.ints("perm")? {
                    Some(p) => p
                        .iter()
                        .map(|&a| cx.axis("perm", a, r))
                        .collect::<Result<Vec<_>, _>>()?,
                    None => (0..r).rev().collect(),
                };
                self.add(cx, Op::Transpose { perm }, &[x])
            }
            "Softmax" => {
                let x = self.operand(cx, 0)?;
                let s = self.shape_of(x);
                let r = s.len();
                let axis = cx.axis(
                    "axis",
                    cx.int_or("axis", if self.opset < 13 { 1 } else { -1 })?,
                    r,
                )?;
                if self.opset >= 13 || axis + 1 == r {
                    return self.add(cx, Op::Softmax { axis }, &[x]);
                }
                // opset < 13: softmax over the 2-D coercion [prod(..axis), prod(axis..)]
                let prod = |d: &[Dim]| d.iter().try_fold(Dim::Known(1), |a, &b| a.checked_mul(b));
                let (Some(a), Some(b)) = (prod(&s[..axis]), prod(&s[axis..])) else {
                    return Err(cx
                        .err("coerced extent is a product of symbolic dimensions")
                        .into());
                };
                let flat = self
                    .g
                    .add_node(
                        Op::Reshape {
                            shape: [a, b].into_iter().collect(),
                        },
                        &[x],
                        Some(cx.name.clone()),
                    )
                    .map_err(|e| cx.err(e.to_string()))?;
                let sm = self
                    .g
                    .add_node(Op::Softmax { axis: 1 }, &[flat], Some(cx.name.clone()))
                    .map_err(|e| cx.err(e.to_string()))?;
                self.add(cx, Op::Reshape { shape: s.clone() }, &[sm])
            }
            "Gather" => self.gather(cx),
            "Slice" => self.slice(cx),
            "Split" => self.split(cx),
            "Cast" => self.cast(cx),
            "Expand" => self.expand(cx),
            "Where" => self.where_op(cx),
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or"
            | "Not" => self.compare(cx),
            "CastLike" => self.cast(cx),
            "Reciprocal" => {
                let x = self.operand(cx, 0)?;
                let one = self
                    .g
                    .add_const(ConstData::new(vec![], vec![1.0]), Some(cx.name.clone()));
                self.add(cx, Op::Binary(BinaryOp::Div), &[one, x])
            }
            "Resize" | "Upsample" => self.resize(cx),
            "ConvTranspose" => self.conv_transpose(cx),
            "ConstantOfShape" => Err(Failure::Unsupported(
                cx.err("only integer shape inputs are supported"),
            )),
            other => {
                debug_assert!(
                    !SUPPORTED_OPS.contains(&other),
                    "{other} listed as supported but not handled"
                );
                Err(Failure::Unsupported(cx.err(unsupported_msg(""))))
            }
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

    /// Clip: constant bounds make one `clip` activation; bounds computed at run time become
    /// `min(max(x, lo), hi)` (ONNX's definition, so `lo > hi` gives `hi`).
    fn clip(&mut self, cx: &NodeCx) -> R<()> {
        if self.opset < 11 {
            let min = cx.float_or("min", f32::NEG_INFINITY)?;
            let max = cx.float_or("max", f32::INFINITY)?;
            return self.act(cx, Activation::Clip { min, max });
        }
        let x = self.operand(cx, 0)?;
        let lo = self.scalar_operand(cx, 1, "min")?;
        let hi = self.scalar_operand(cx, 2, "max")?;
        let (cmin, cmax) = (
            match lo {
                Some(Ok(v)) => v,
                _ => f32::NEG_INFINITY,
            },
            match hi {
                Some(Ok(v)) => v,
                _ => f32::INFINITY,
            },
        );
        if !matches!(lo, Some(Err(_))) && !matches!(hi, Some(Err(_))) {
            return self.add(
                cx,
                Op::Act(Activation::Clip {
                    min: cmin,
                    max: cmax,
                }),
                &[x],
            );
        }
        let mut y = x;
        if let Some(Err(l)) = lo {
            y = self.node_at(cx, Op::Binary(BinaryOp::Max), &[y, l])?;
        }
        if cmin != f32::NEG_INFINITY || cmax != f32::INFINITY {
            y = self.node_at(
                cx,
                Op::Act(Activation::Clip {
                    min: cmin,
                    max: cmax,
                }),
                &[y],
            )?;
        }
        if let Some(Err(h)) = hi {
            y = self.node_at(cx, Op::Binary(BinaryOp::Min), &[y, h])?;
        }
        self.def(cx, y)
    }

    fn act(&mut self, cx: &NodeCx, a: Activation) -> R<()> {
        let x = self.operand(cx, 0)?;
        self.add(cx, Op::Act(a), &[x])
    }

    fn constant(&mut self, cx: &NodeCx) -> R<()> {
        let out = cx
            .node
            .output
            .first()
            .cloned()
            .ok_or_else(|| cx.err("has no output"))?;
        let val = if let Some(t) = cx.tensor("value")? {
            decode(t, self.base).map_err(|m| cx.attr_err("value", m))?
        } else if let Some(f) = cx.float("value_float")? {
            ConstVal::F32(vec![], vec![f])
        } else if let Some(f) = cx.floats("value_floats")? {
            ConstVal::F32(vec![f.len()], f)
        } else if let Some(i) = cx.int("value_int")? {
            ConstVal::I64(vec![], vec![i])
        } else if let Some(i) = cx.ints("value_ints")? {
            ConstVal::I64(vec![i.len()], i)
        } else {
            return Err(cx.err("needs one of value, value_float(s), value_int(s); sparse and string values are not supported").into());
        };
        match val {
            ConstVal::F32(s, d) => {
                let v = self
                    .g
                    .add_const(ConstData::new(s, d), Some(cx.name.clone()));
                self.vals.insert(out, v);
            }
            ConstVal::I64(s, d) => {
                self.ints
                    .insert(out, (s, d.into_iter().map(IV::K).collect()));
            }
        }
        Ok(())
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

    /// LayerNormalization (opset 17) lowered to existing ops over axes `axis..rank`:
    /// `(x - mean) / sqrt(mean((x - mean)^2) + eps) * scale + bias`.
    fn layer_norm(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let r = self.shape_of(x).len();
        let axis = cx.axis("axis", cx.int_or("axis", -1)?, r)?;
        let eps = cx.float_or("epsilon", 1e-5)?;
        let axes: Vec<usize> = (axis..r).collect();
        let node = |s: &mut Self, op: Op, ins: &[ValueId]| {
            s.g.add_node(op, ins, Some(cx.name.clone()))
                .map_err(|e| Failure::Error(cx.err(e.to_string())))
        };
        let mean = node(
            self,
            Op::ReduceMean {
                axes: axes.clone(),
                keep_dims: true,
            },
            &[x],
        )?;
        let d = node(self, Op::Binary(BinaryOp::Sub), &[x, mean])?;
        let sq = node(self, Op::Binary(BinaryOp::Mul), &[d, d])?;
        let var = node(
            self,
            Op::ReduceMean {
                axes,
                keep_dims: true,
            },
            &[sq],
        )?;
        let epsc = self
            .g
            .add_const(ConstData::new(vec![], vec![eps]), Some(cx.name.clone()));
        let ve = node(self, Op::Binary(BinaryOp::Add), &[var, epsc])?;
        let sd = node(self, Op::Act(Activation::Sqrt), &[ve])?;
        // optional outputs: Mean and InvStdDev, reduced axes kept as 1
        if let Some(name) = cx.node.output.get(1).filter(|s| !s.is_empty()) {
            self.vals.insert(name.clone(), mean);
        }
        if let Some(name) = cx.node.output.get(2).filter(|s| !s.is_empty()) {
            let one = self
                .g
                .add_const(ConstData::new(vec![], vec![1.0]), Some(cx.name.clone()));
            let inv = node(self, Op::Binary(BinaryOp::Div), &[one, sd])?;
            self.vals.insert(name.clone(), inv);
        }
        let norm = node(self, Op::Binary(BinaryOp::Div), &[d, sd])?;
        let scale = self.operand(cx, 1)?;
        if cx.input(2).is_none() {
            return self.add(cx, Op::Binary(BinaryOp::Mul), &[norm, scale]);
        }
        let scaled = node(self, Op::Binary(BinaryOp::Mul), &[norm, scale])?;
        let bias = self.operand(cx, 2)?;
        self.add(cx, Op::Binary(BinaryOp::Add), &[scaled, bias])
    }

    /// Reductions: ReduceMean keeps its own op (SE detection matches it), the others share
    /// `Op::Reduce`. Axes are an attribute before opset 13 (ReduceSum) or 18 (the others),
    /// an optional input after; empty axes mean all axes unless `noop_with_empty_axes`.
    fn reduce(&mut self, cx: &NodeCx) -> R<()> {
        let kind = match cx.op() {
            "ReduceSum" => Some(secc_ir::ReduceKind::Sum),
            "ReduceMax" => Some(secc_ir::ReduceKind::Max),
            "ReduceMin" => Some(secc_ir::ReduceKind::Min),
            _ => None,
        };
        let x = self.operand(cx, 0)?;
        let rank = self.shape_of(x).len();
        let keep_dims = cx.int_or("keepdims", 1)? != 0;
        let axes_input_from = if kind == Some(secc_ir::ReduceKind::Sum) {
            13
        } else {
            18
        };
        let axes = self.axes_input_or_attr(cx, axes_input_from)?;
        let noop = cx.int_or("noop_with_empty_axes", 0)? != 0;
        let axes = match axes {
            Some(a) if !a.is_empty() => self.norm_axes(cx, &a, rank)?,
            _ if noop => return self.add(cx, Op::Identity, &[x]),
            _ => (0..rank).collect(),
        };
        let op = match kind {
            Some(kind) => Op::Reduce {
                kind,
                axes,
                keep_dims,
            },
            None => Op::ReduceMean { axes, keep_dims },
        };
        self.add(cx, op, &[x])
    }

    fn reshape(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let target = self.shape_ints(cx, 1, "shape")?;
        let allowzero = cx.int_or("allowzero", 0)? != 0;
        let s = self.shape_of(x);
        let mut out: Vec<Option<Dim>> = Vec::with_capacity(target.len());
        for (i, &t) in target.iter().enumerate() {
            let t = match t {
                IV::K(k) => k,
                IV::S(sym, k) => {
                    out.push(Some(Dim::Sym(sym, k)));
                    continue;
                }
            };
            out.push(match t {
                -1 => None,
                0 if !allowzero => Some(*s.get(i).ok_or_else(|| {
                    cx.err(format!(
                        "shape[{i}] = 0 copies an axis the input (rank {}) does not have",
                        s.len()
                    ))
                })?),
                t if crate::attrs::in_range(t, 0) => Some(Dim::Known(t as u64)),
                t if t > 0 => {
                    return Err(cx
                        .err(format!(
                            "shape[{i}] = {t} exceeds the size limit {}",
                            secc_ir::MAX_ELEMENTS
                        ))
                        .into())
                }
                t => return Err(cx.err(format!("shape[{i}] = {t} is invalid")).into()),
            });
        }
        if out.iter().filter(|d| d.is_none()).count() > 1 {
            return Err(cx.err("shape has more than one -1").into());
        }
        let total = TensorType::f32(s.iter().copied())
            .numel()
            .ok_or_else(|| cx.err("input size is a product of symbols"))?;
        let dims: Vec<Dim> = out.iter().flatten().copied().collect();
        let known = dims
            .iter()
            .try_fold(Dim::Known(1), |a, &b| a.checked_mul(b))
            .ok_or_else(|| {
                let syms = dims.iter().filter(|d| d.known().is_none()).count();
                cx.err(if syms > 1 {
                    "target size is a product of symbols".to_string()
                } else {
                    format!(
                        "target shape {:?} exceeds the size limit of {} elements",
                        dims.iter()
                            .map(|d| d.display(&self.g.sym_names))
                            .collect::<Vec<_>>(),
                        secc_ir::MAX_ELEMENTS
                    )
                })
            })?;
        let fill = if out.iter().any(|d| d.is_none()) {
            Some(total.checked_div(known).ok_or_else(|| {
                cx.err(format!(
                    "cannot infer -1: {} elements do not divide into {}",
                    total.display(&self.g.sym_names),
                    known.display(&self.g.sym_names)
                ))
            })?)
        } else {
            None
        };
        let shape: Shape = out
            .into_iter()
            .map(|d| d.or(fill).unwrap_or(Dim::Known(1)))
            .collect();
        self.add(cx, Op::Reshape { shape }, &[x])
    }

    fn squeeze(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let s = self.shape_of(x);
        let axes = match self.axes_input_or_attr(cx, 13)? {
            Some(a) => self.norm_axes(cx, &a, s.len())?,
            None => (0..s.len()).filter(|&i| s[i] == Dim::Known(1)).collect(),
        };
        for &a in &axes {
            if s[a] != Dim::Known(1) {
                return Err(cx
                    .attr_err(
                        "axes",
                        format!(
                            "axis {a} has extent {}, not 1",
                            s[a].display(&self.g.sym_names)
                        ),
                    )
                    .into());
            }
        }
        let shape: Shape = s
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect();
        self.add(cx, Op::Reshape { shape }, &[x])
    }

    fn unsqueeze(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let s = self.shape_of(x);
        let axes = self
            .axes_input_or_attr(cx, 13)?
            .ok_or_else(|| cx.err("needs axes"))?;
        let rank = s.len() + axes.len();
        let axes = self.norm_axes(cx, &axes, rank)?;
        let mut it = s.iter();
        let mut shape = Shape::new();
        for i in 0..rank {
            if axes.contains(&i) {
                shape.push(Dim::Known(1));
            } else {
                shape.push(*it.next().ok_or_else(|| cx.err("axes out of range"))?);
            }
        }
        self.add(cx, Op::Reshape { shape }, &[x])
    }

    /// Explicit `[top, left, bottom, right]` pads from `pads`/`auto_pad` for a window with
    /// effective extents `eff` and `strides` over input extents `inp`.
    fn resolve_pads(
        &self,
        cx: &NodeCx,
        inp: [Option<u64>; 2],
        eff: [u64; 2],
        strides: [u64; 2],
    ) -> R<[u64; 4]> {
        let auto_pad = cx.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
        Ok(match auto_pad.as_str() {
            "NOTSET" => cx.pads4()?.unwrap_or([0; 4]),
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = [0u64; 4];
                for i in 0..2 {
                    let inp =
                        inp[i].ok_or_else(|| cx.err("SAME padding needs known spatial extents"))?;
                    let out = inp.div_ceil(strides[i]);
                    // out - 1 <= inp / stride, so this stays near inp + eff (both bounded)
                    let total = ((out - 1) * strides[i] + eff[i]).saturating_sub(inp);
                    let (small, big) = (total / 2, total - total / 2);
                    if auto_pad == "SAME_UPPER" {
                        p[i] = small;
                        p[i + 2] = big;
                    } else {
                        p[i] = big;
                        p[i + 2] = small;
                    }
                }
                p
            }
            other => {
                return Err(cx
                    .attr_err("auto_pad", format!("unknown value {other:?}"))
                    .into())
            }
        })
    }

    fn pool(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let xs = self.shape_of(x);
        if xs.len() != 4 {
            return Err(Failure::Unsupported(cx.err(format!(
                "only 1-D and 2-D pooling are supported (input rank {})",
                xs.len()
            ))));
        }
        let two = |name: &str, d: u64| cx.pair(name, d, 1);
        let kernel = match cx.ints("kernel_shape")? {
            Some(v) if v.len() == 2 && v.iter().all(|&x| crate::attrs::in_range(x, 1)) => {
                [v[0] as u64, v[1] as u64]
            }
            Some(v) => {
                return Err(cx
                    .attr_err(
                        "kernel_shape",
                        format!("{v:?} must be two values in 1..={}", secc_ir::MAX_ELEMENTS),
                    )
                    .into())
            }
            None => return Err(cx.attr_err("kernel_shape", "is required").into()),
        };
        let strides = two("strides", 1)?;
        let max = cx.op() == "MaxPool";
        let dilations = two("dilations", 1)?;
        let column_major = match cx.int_or("storage_order", 0)? {
            0 => false,
            1 => true,
            v => {
                return Err(cx
                    .attr_err("storage_order", format!("{v} must be 0 or 1"))
                    .into())
            }
        };
        let eff = window_extents(cx, kernel, dilations)?;
        let pads = self.resolve_pads(cx, [xs[2].known(), xs[3].known()], eff, strides)?;
        let attrs = secc_ir::PoolAttrs {
            kind: if max {
                secc_ir::PoolKind::Max
            } else {
                secc_ir::PoolKind::Avg
            },
            kernel,
            strides,
            pads,
            dilations,
            ceil_mode: cx.int_or("ceil_mode", 0)? != 0,
            count_include_pad: cx.int_or("count_include_pad", 0)? != 0,
        };
        if let Some(name) = cx.node.output.get(1).filter(|s| !s.is_empty()) {
            if !max {
                return Err(cx.err("has a second output; only MaxPool has one").into());
            }
            let pool = attrs.clone();
            let i = self.node_at(cx, Op::MaxPoolIndices { pool, column_major }, &[x])?;
            self.vals.insert(name.clone(), i);
        }
        self.add(cx, Op::Pool2d(attrs), &[x])
    }

    /// Inference-mode BatchNormalization becomes `x * s + t` with per-channel constants
    /// (`s = scale / sqrt(var + eps)`, `t = bias - mean * s`); the `affine-fold` pass then
    /// folds both into a preceding convolution. Parameters computed at run time (graph
    /// inputs) become that arithmetic on `[C, 1, ...]` views instead (`batch_norm_dynamic`).
    fn batch_norm(&mut self, cx: &NodeCx) -> R<()> {
        if cx.int_or("training_mode", 0)? != 0
            || cx.node.output.iter().skip(1).any(|o| !o.is_empty())
        {
            return Err(Failure::Unsupported(cx.err(
                "training-mode BatchNormalization (extra outputs) is not supported",
            )));
        }
        let x = self.operand(cx, 0)?;
        let xs = self.shape_of(x);
        if xs.len() < 2 {
            return Err(cx
                .err(format!("input must have rank >= 2, got {}", xs.len()))
                .into());
        }
        let c = xs[1]
            .known()
            .ok_or_else(|| cx.err("channel extent must be known"))? as usize;
        let eps = cx.float_or("epsilon", 1e-5)?;
        let names = [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")];
        let mut vals = Vec::new();
        for (i, _) in names {
            vals.push(self.operand(cx, i)?);
        }
        if vals.iter().any(|v| self.g.const_of(*v).is_none()) {
            return self.batch_norm_dynamic(cx, x, &vals, eps);
        }
        let mut params = Vec::new();
        for ((i, what), v) in names.into_iter().zip(vals) {
            let d = self
                .g
                .const_of(v)
                .ok_or_else(|| cx.err(format!("input {i} ({what}) must be a constant")))?;
            if d.data.len() != c {
                return Err(cx
                    .err(format!(
                        "input {i} ({what}) has {} values for {c} channels",
                        d.data.len()
                    ))
                    .into());
            }
            params.push(d.data.clone());
        }
        let (gamma, beta, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
        let s: Vec<f32> = (0..c)
            .map(|k| (gamma[k] as f64 / (var[k] as f64 + eps as f64).sqrt()) as f32)
            .collect();
        let t: Vec<f32> = (0..c)
            .map(|k| (beta[k] as f64 - mean[k] as f64 * s[k] as f64) as f32)
            .collect();
        let mut shape = vec![c];
        shape.extend(std::iter::repeat_n(1, xs.len() - 2));
        let sc = self.g.add_const(
            ConstData::new(shape.clone(), s),
            Some(format!("{}.scale", cx.name)),
        );
        let tc = self
            .g
            .add_const(ConstData::new(shape, t), Some(format!("{}.shift", cx.name)));
        let m = self
            .g
            .add_node(Op::Binary(BinaryOp::Mul), &[x, sc], Some(cx.name.clone()))
            .map_err(|e| cx.err(e.to_string()))?;
        let a = self
            .g
            .add_node(Op::Binary(BinaryOp::Add), &[m, tc], Some(cx.name.clone()))
            .map_err(|e| cx.err(e.to_string()))?;
        self.def(cx, a)
    }

    /// `(x - mean) * (scale / sqrt(var + eps)) + bias` with `[C]` parameters viewed as
    /// `[C, 1, ...]`; `fuse-elementwise` makes one kernel of it.
    fn batch_norm_dynamic(&mut self, cx: &NodeCx, x: ValueId, p: &[ValueId], eps: f32) -> R<()> {
        let xs = self.shape_of(x);
        let mut view: Shape = [xs[1]].into_iter().collect();
        view.extend(std::iter::repeat_n(Dim::Known(1), xs.len() - 2));
        let mut q = Vec::new();
        for (k, &v) in p.iter().enumerate() {
            if self.shape_of(v).as_slice() != [xs[1]] {
                return Err(cx
                    .err(format!(
                        "input {} has type {}, expected one value per channel ({})",
                        k + 1,
                        self.g.ty(v).display(&self.g.sym_names),
                        xs[1].display(&self.g.sym_names)
                    ))
                    .into());
            }
            q.push(self.node_at(
                cx,
                Op::Reshape {
                    shape: view.clone(),
                },
                &[v],
            )?);
        }
        let (scale, bias, mean, var) = (q[0], q[1], q[2], q[3]);
        let e = self
            .g
            .add_const(ConstData::new(vec![], vec![eps]), Some(cx.name.clone()));
        let ve = self.node_at(cx, Op::Binary(BinaryOp::Add), &[var, e])?;
        let sd = self.node_at(cx, Op::Act(Activation::Sqrt), &[ve])?;
        let s = self.node_at(cx, Op::Binary(BinaryOp::Div), &[scale, sd])?;
        let xm = self.node_at(cx, Op::Binary(BinaryOp::Sub), &[x, mean])?;
        let m = self.node_at(cx, Op::Binary(BinaryOp::Mul), &[xm, s])?;
        self.add(cx, Op::Binary(BinaryOp::Add), &[m, bias])
    }

    fn conv(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let w = self.operand(cx, 1)?;
        let xs = self.shape_of(x);
        let ws = self.shape_of(w);
        if xs.len() != 4 || ws.len() != 4 {
            return Err(Failure::Unsupported(cx.err(format!(
                "only 1-D and 2-D convolution are supported (input rank {})",
                xs.len()
            ))));
        }
        let k = [ws[2].known().unwrap_or(1), ws[3].known().unwrap_or(1)];
        cx.check_kernel_shape(k)?;
        let strides = cx.pair("strides", 1, 1)?;
        let dilations = cx.pair("dilations", 1, 1)?;
        let group = cx.int_or("group", 1)?;
        if group < 1 {
            return Err(cx.attr_err("group", format!("{group} must be >= 1")).into());
        }
        let eff = window_extents(cx, k, dilations)?;
        let pads = self.resolve_pads(cx, [xs[2].known(), xs[3].known()], eff, strides)?;
        let mut ins = vec![x, w];
        if cx.input(2).is_some() {
            ins.push(self.operand(cx, 2)?);
        }
        self.add(
            cx,
            Op::Conv2d(Conv2dAttrs {
                strides,
                pads,
                dilations,
                group: group as u64,
                act: None,
                residual: false,
            }),
            &ins,
        )
    }
}
