//! secc-passes: the pass manager and the graph passes.
//!
//! Passes work in place on a [`secc_ir::Graph`]; the [`PassManager`] runs them in the order of
//! [`pipeline::default_pipeline`], verifies the graph after each, and can print the textual IR
//! after any of them. Passes never see ONNX types.
#![forbid(unsafe_code)]

mod affine_fold;
pub mod canon;
mod const_fold;
mod conv_act;
mod cse;
mod dce;
mod ew_fuse;
mod identity;
pub mod layout;
mod manager;
pub mod pipeline;
pub mod se_fuse;
mod se_pool;

pub use affine_fold::AffineFold;
pub use canon::Canonicalise;
pub use const_fold::ConstFold;
pub use conv_act::FuseConvAct;
pub use cse::Cse;
pub use dce::DeadCode;
pub use ew_fuse::FuseElementwise;
pub use identity::RemoveIdentity;
pub use layout::{AssignLayout, FuseConvResidual};
pub use manager::{Changed, Pass, PassError, PassLog, PassManager, PrintAfter};
pub use se_fuse::SeFuse;
pub use se_pool::FuseSePool;
