//! Import errors.
use std::fmt;

/// An error tied to one ONNX node: `node "Conv_3" (Conv): attribute 'pads': ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeError {
    /// node name (or `#index` when the node is unnamed)
    pub node: String,
    /// ONNX op type
    pub op_type: String,
    /// what was wrong
    pub msg: String,
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {:?} ({}): {}", self.node, self.op_type, self.msg)
    }
}

/// Everything that can go wrong while importing a model.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// the path
        path: String,
        /// the cause
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid ONNX protobuf.
    #[error("not a valid ONNX model (protobuf parse failed): {0}")]
    Parse(String),
    /// A structural problem of the model (missing graph, bad opset, bad input declaration).
    #[error("invalid model: {0}")]
    Model(String),
    /// An import option that does not fit the model (a fixed dimension it does not have).
    #[error("{0}")]
    Options(String),
    /// Ops secc does not support, all of them at once.
    #[error("unsupported ONNX op(s) ({} node(s)):\n{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Unsupported(Vec<NodeError>),
    /// A supported op used in a way that is invalid or unsupported.
    #[error("{0}")]
    Node(NodeError),
    /// An initializer could not be decoded.
    #[error("initializer {name:?}: {msg}")]
    Tensor {
        /// tensor name
        name: String,
        /// what was wrong
        msg: String,
    },
}
