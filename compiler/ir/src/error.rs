//! Errors of the IR layer; every node-related error names the node.
use std::fmt;

/// A printable reference to a node: `node %12 "Conv_37" (conv2d)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// Internal node index (stable while the node lives).
    pub id: u32,
    /// ONNX node name the node came from, if any.
    pub origin: Option<String>,
    /// Op mnemonic as printed in the textual IR.
    pub op: String,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(o) => write!(f, "node n{} \"{}\" ({})", self.id, o, self.op),
            None => write!(f, "node n{} ({})", self.id, self.op),
        }
    }
}

/// Errors raised while building, checking or interpreting a graph.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    /// Wrong number of operands for an op.
    #[error("{op}: expected {expected} operand(s), got {got}")]
    Arity {
        /// op mnemonic
        op: String,
        /// human description of the accepted count
        expected: String,
        /// actual count
        got: usize,
    },
    /// Operand types do not satisfy the op's type rule.
    #[error("{op}: {msg}")]
    Type {
        /// op mnemonic
        op: String,
        /// what was wrong
        msg: String,
    },
    /// An error tied to a specific node.
    #[error("{node}: {source}")]
    AtNode {
        /// the node
        node: NodeRef,
        /// the cause
        #[source]
        source: Box<IrError>,
    },
    /// Interpreter failure (bad inputs, unbound symbol...).
    #[error("interpreter: {0}")]
    Interp(String),
}

impl IrError {
    /// Shorthand for a type-rule failure.
    pub fn ty(op: &str, msg: impl Into<String>) -> Self {
        IrError::Type {
            op: op.to_string(),
            msg: msg.into(),
        }
    }
}
