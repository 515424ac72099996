//! A tiny ONNX model builder, so tests can write hostile models in Rust (no Python).
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TypeProto, ValueInfoProto,
};

/// A model under construction: one graph, default-domain opset.
pub struct Model {
    graph: GraphProto,
    opset: i64,
}

/// An attribute value for [`Model::node`].
pub enum A<'a> {
    /// INT
    I(i64),
    /// INTS
    Is(&'a [i64]),
    /// FLOAT
    F(f32),
    /// STRING
    S(&'a str),
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let mut t = TypeProto::new();
    let tt = t.mut_tensor_type();
    tt.elem_type = 1;
    let shape = tt.shape.mut_or_insert_default();
    for &d in dims {
        let mut dim = onnx_protobuf::tensor_shape_proto::Dimension::new();
        if d > 0 {
            dim.set_dim_value(d);
        } else {
            dim.set_dim_param("N".into());
        }
        shape.dim.push(dim);
    }
    let mut vi = ValueInfoProto::new();
    vi.name = name.into();
    vi.type_ = Some(t).into();
    vi
}

impl Model {
    /// An empty model at `opset`.
    pub fn new(opset: i64) -> Self {
        let mut graph = GraphProto::new();
        graph.name = "hostile".into();
        Model { graph, opset }
    }

    /// A float32 graph input; a dim <= 0 is the symbolic batch `N`.
    pub fn input(mut self, name: &str, dims: &[i64]) -> Self {
        self.graph.input.push(value_info(name, dims));
        self
    }

    /// A float32 graph input whose dims are numbers, `dim_param` names, or `""` for an
    /// unnamed (anonymous) dim.
    pub fn input_params(mut self, name: &str, dims: &[&str]) -> Self {
        let mut vi = value_info(name, &vec![1; dims.len()]);
        let t = vi.type_.as_mut().expect("just built");
        let shape = t.mut_tensor_type().shape.as_mut().expect("just built");
        for (dim, d) in shape.dim.iter_mut().zip(dims) {
            *dim = onnx_protobuf::tensor_shape_proto::Dimension::new();
            match d.parse::<i64>() {
                Ok(v) => dim.set_dim_value(v),
                Err(_) if d.is_empty() => {}
                Err(_) => dim.set_dim_param(d.to_string()),
            }
        }
        self.graph.input.push(vi);
        self
    }

    /// A float32 graph output (shape left to the importer).
    pub fn output(mut self, name: &str) -> Self {
        let mut vi = ValueInfoProto::new();
        vi.name = name.into();
        self.graph.output.push(vi);
        self
    }

    /// A float32 initializer.
    pub fn f32s(mut self, name: &str, dims: &[i64], data: Vec<f32>) -> Self {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.data_type = 1;
        t.dims = dims.to_vec();
        t.float_data = data;
        self.graph.initializer.push(t);
        self
    }

    /// An int64 initializer.
    pub fn i64s(mut self, name: &str, dims: &[i64], data: Vec<i64>) -> Self {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.data_type = 7;
        t.dims = dims.to_vec();
        t.int64_data = data;
        self.graph.initializer.push(t);
        self
    }

    /// A node named `name`; empty input names are omitted optional inputs.
    pub fn node(
        mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: &[(&str, A)],
    ) -> Self {
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.name = name.into();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = outputs.iter().map(|s| s.to_string()).collect();
        for (k, v) in attrs {
            let mut a = AttributeProto::new();
            a.name = k.to_string();
            let ty = match v {
                A::I(i) => {
                    a.i = *i;
                    AttributeType::INT
                }
                A::Is(v) => {
                    a.ints = v.to_vec();
                    AttributeType::INTS
                }
                A::F(f) => {
                    a.f = *f;
                    AttributeType::FLOAT
                }
                A::S(s) => {
                    a.s = s.as_bytes().to_vec();
                    AttributeType::STRING
                }
            };
            a.type_ = ty.into();
            n.attribute.push(a);
        }
        self.graph.node.push(n);
        self
    }

    /// A node with one TENSOR attribute (ConstantOfShape's `value`, Constant's `value`).
    pub fn node_with_tensor(
        mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attr: &str,
        t: TensorProto,
    ) -> Self {
        self = self.node(op, name, inputs, outputs, &[]);
        let mut a = AttributeProto::new();
        a.name = attr.into();
        a.type_ = AttributeType::TENSOR.into();
        a.t = Some(t).into();
        let n = self.graph.node.last_mut().expect("just pushed");
        n.attribute.push(a);
        self
    }

    /// The serialized `ModelProto`.
    pub fn bytes(&self) -> Vec<u8> {
        let mut m = ModelProto::new();
        m.ir_version = 8;
        let mut o = OperatorSetIdProto::new();
        o.version = self.opset;
        m.opset_import.push(o);
        m.graph = Some(self.graph.clone()).into();
        m.write_to_bytes().expect("a model always serializes")
    }

    /// Imports the model (no external data).
    pub fn import(&self) -> Result<secc_ir::Graph, secc_onnx::ImportError> {
        secc_onnx::import_bytes(&self.bytes(), None, &Default::default())
    }
}

/// Deterministic non-zero values in [-1, 1).
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let v = (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
            if v == 0.0 {
                0.5
            } else {
                v
            }
        })
        .collect()
}
