//! secc-onnx: turns an ONNX `ModelProto` into a [`secc_ir::Graph`].
//!
//! This crate is the only place that knows ONNX spellings: attributes are resolved into the
//! IR's typed fields here (negative axes normalised, Clip bounds and Reshape shapes read from
//! constant inputs, `auto_pad` turned into explicit pads, Dropout into Identity). Integer
//! tensors (shapes, axes) never enter the IR: they are evaluated at import.
//!
//! Every error names the ONNX node, its op type and, where relevant, the attribute; all
//! unsupported ops of a model are reported in one [`ImportError::Unsupported`].
#![forbid(unsafe_code)]

mod attrs;
mod error;
mod import;
mod tensor;

pub use error::{ImportError, NodeError};
pub use import::{import_bytes, import_file, ImportOptions, MAX_OPSET, MIN_OPSET, SUPPORTED_OPS};
pub use tensor::{file_kind, read_tensor_proto, TensorFile};
