//! secc-ir: the graph IR every compiler stage shares.
//!
//! It owns the closed [`Op`] enum with typed attributes, tensor types whose dimensions may be
//! expressions over symbols ([`Dim`], with the [`Constraint`]s the shape rules imply), the [`Graph`] on a petgraph `StableDiGraph` with a builder that infers
//! types, the [`verify`](Graph::verify) pass, the stable textual form ([`print`]) used by snapshot
//! tests, and an obviously-correct reference interpreter ([`interp`]) that every rewrite and
//! kernel is checked against.
//!
//! It depends on no other secc crate and knows nothing of ONNX, egg or LLVM.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod constraint;
pub mod dim_expr;
mod error;
mod graph;
mod infer;
pub mod interp;
pub mod layout;
mod op;
pub mod print;
mod resize;
mod types;
mod verify;

pub use constraint::{Constraint, Rel};
pub use error::{IrError, NodeRef};
pub use graph::{ConstData, ConstId, ConstPool, Graph, Node, NodeId, ValueId};
pub use op::{
    dilated, Activation, BinaryOp, Conv2dAttrs, ConvTransposeAttrs, EwInstr, GemmAttrs, IntElem,
    Op, PadMode, PoolAttrs, PoolKind, ReduceKind, SeAttrs, SeGateAttrs,
};
pub use resize::{CoordMode, NearestMode, ResizeAttrs, ResizeMode, Tap};
pub use types::{
    broadcast_shapes, DType, Dim, ExprId, Layout, Shape, SymId, TensorType, MAX_ELEMENTS,
};
pub use verify::VerifyErrors;
