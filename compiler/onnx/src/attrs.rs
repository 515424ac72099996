//! Attribute helpers whose errors name the node, its op type and the attribute.
use crate::error::NodeError;
use onnx_protobuf::{AttributeProto, NodeProto};
use secc_ir::MAX_ELEMENTS;

/// `min <= x <= MAX_ELEMENTS`: the sane range of a size-like attribute.
pub(crate) fn in_range(x: i64, min: i64) -> bool {
    x >= min && x as u64 <= MAX_ELEMENTS
}

/// A node being imported, with its display name.
pub(crate) struct NodeCx<'a> {
    pub node: &'a NodeProto,
    pub name: String,
}

const FLOAT: i32 = 1;
const INT: i32 = 2;
const STRING: i32 = 3;
const TENSOR: i32 = 4;
const FLOATS: i32 = 6;
const INTS: i32 = 7;

impl<'a> NodeCx<'a> {
    pub fn new(node: &'a NodeProto, index: usize) -> Self {
        let name = if node.name.is_empty() {
            format!("#{index}")
        } else {
            node.name.clone()
        };
        NodeCx { node, name }
    }

    pub fn op(&self) -> &str {
        &self.node.op_type
    }

    pub fn err(&self, msg: impl Into<String>) -> NodeError {
        NodeError {
            node: self.name.clone(),
            op_type: self.node.op_type.clone(),
            msg: msg.into(),
        }
    }

    pub fn attr_err(&self, attr: &str, msg: impl std::fmt::Display) -> NodeError {
        self.err(format!("attribute '{attr}': {msg}"))
    }

    fn get(&self, name: &str, ty: i32) -> Result<Option<&'a AttributeProto>, NodeError> {
        match self.node.attribute.iter().find(|a| a.name == name) {
            None => Ok(None),
            Some(a) => {
                let t = a.type_.value();
                if !a.ref_attr_name.is_empty() {
                    return Err(self.attr_err(
                        name,
                        "references a function attribute, which is not supported",
                    ));
                }
                if t != ty && t != 0 {
                    let n = |t| match t {
                        FLOAT => "float",
                        INT => "int",
                        STRING => "string",
                        TENSOR => "tensor",
                        FLOATS => "floats",
                        INTS => "ints",
                        _ => "other",
                    };
                    return Err(
                        self.attr_err(name, format!("expected type {}, found {}", n(ty), n(t)))
                    );
                }
                Ok(Some(a))
            }
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, NodeError> {
        Ok(self.get(name, INT)?.map(|a| a.i))
    }
    pub fn int_or(&self, name: &str, d: i64) -> Result<i64, NodeError> {
        Ok(self.int(name)?.unwrap_or(d))
    }
    pub fn float(&self, name: &str) -> Result<Option<f32>, NodeError> {
        Ok(self.get(name, FLOAT)?.map(|a| a.f))
    }
    pub fn float_or(&self, name: &str, d: f32) -> Result<f32, NodeError> {
        Ok(self.float(name)?.unwrap_or(d))
    }
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, NodeError> {
        Ok(self.get(name, INTS)?.map(|a| a.ints.clone()))
    }
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, NodeError> {
        Ok(self.get(name, FLOATS)?.map(|a| a.floats.clone()))
    }
    pub fn string(&self, name: &str) -> Result<Option<String>, NodeError> {
        match self.get(name, STRING)? {
            None => Ok(None),
            Some(a) => String::from_utf8(a.s.clone())
                .map(Some)
                .map_err(|_| self.attr_err(name, "is not valid UTF-8")),
        }
    }
    pub fn tensor(&self, name: &str) -> Result<Option<&'a onnx_protobuf::TensorProto>, NodeError> {
        Ok(self.get(name, TENSOR)?.and_then(|a| a.t.as_ref()))
    }

    /// Input name `i`, or `None` when absent or the empty "optional" name.
    pub fn input(&self, i: usize) -> Option<&'a str> {
        self.node
            .input
            .get(i)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }

    /// A two-value spatial attribute (strides, dilations, output_padding): `[d, d]` when
    /// absent, else exactly two values in `min..=MAX_ELEMENTS`.
    pub fn pair(&self, name: &str, d: u64, min: i64) -> Result<[u64; 2], NodeError> {
        match self.ints(name)? {
            None => Ok([d, d]),
            Some(v) if v.len() == 2 && v.iter().all(|&x| in_range(x, min)) => {
                Ok([v[0] as u64, v[1] as u64])
            }
            Some(v) => Err(self.attr_err(
                name,
                format!("{v:?} must be two values in {min}..={MAX_ELEMENTS}"),
            )),
        }
    }

    /// A four-value `pads` attribute `[top, left, bottom, right]`, each in `0..=MAX_ELEMENTS`.
    pub fn pads4(&self) -> Result<Option<[u64; 4]>, NodeError> {
        match self.ints("pads")? {
            None => Ok(None),
            Some(p) if p.len() == 4 && p.iter().all(|&x| in_range(x, 0)) => {
                Ok(Some([p[0] as u64, p[1] as u64, p[2] as u64, p[3] as u64]))
            }
            Some(p) => Err(self.attr_err(
                "pads",
                format!("{p:?} must be 4 values in 0..={MAX_ELEMENTS}"),
            )),
        }
    }

    /// Checks an optional `kernel_shape` against the kernel extents of the weights.
    pub fn check_kernel_shape(&self, k: [u64; 2]) -> Result<(), NodeError> {
        match self.ints("kernel_shape")? {
            Some(ks) if ks.len() != 2 || ks[0] as u64 != k[0] || ks[1] as u64 != k[1] => Err(self
                .attr_err(
                    "kernel_shape",
                    format!("{ks:?} does not match weight shape {k:?}"),
                )),
            _ => Ok(()),
        }
    }

    /// Normalises an axis into `0..rank`.
    pub fn axis(&self, attr: &str, a: i64, rank: usize) -> Result<usize, NodeError> {
        let r = rank as i64;
        if a < -r || a >= r {
            return Err(self.attr_err(attr, format!("axis {a} out of range for rank {rank}")));
        }
        Ok(if a < 0 { (a + r) as usize } else { a as usize })
    }
}
