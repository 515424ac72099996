//! secc-codegen: lowers an optimised [`secc_ir::Graph`] to kernels with LLVM (through inkwell)
//! and packs them, with the weights and the execution plan, into an artifact.
//!
//! * [`plan`] assigns buffers (inputs, outputs, weights, temporaries, reshape aliases) and
//!   turns every compute node into a kernel step.
//! * [`kernels`] holds the kernel bodies, written once against [`kb::Kb`], a small builder
//!   that hides the target: on the CPU a kernel is called by every thread of the runtime's
//!   pool with `(tid, nthreads)` and a barrier callback; on NVPTX the same body reads
//!   `tid.x`/`ctaid.x` and uses `bar.sync`. Only the prologue differs.
//! * [`pool`] and [`resize`] hold the windowed pools and resizes (run-time extents where
//!   the shapes are symbolic).
//! * [`blocked`] holds the kernels over blocked (`nChw{c}c`) tensors, with register-tiled
//!   convolutions and weights packed at compile time; [`winograd`] the Winograd F(2x2, 3x3)
//!   and F(4x4, 3x3) forms of 3x3 stride-1 convolutions over them.
//! * [`launch`] writes each CUDA kernel's launch contract (grid, block, shared memory,
//!   parameters) into the manifest.
//! * [`target`] creates target machines, optimises (O3, vectorised reductions through
//!   reassoc/contract flags), emits an object linked into a shared object with `cc`, or PTX.
//!
//! This is the only crate that links LLVM. It never depends on the ONNX or pass crates.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod blocked;
pub mod kb;
pub mod kernels;
pub mod launch;
pub mod plan;
pub mod pool;
pub mod resize;
pub mod target;
pub mod winograd;

pub use target::{check_target, compile, compile_timed, vector_block, CodegenOptions, Target};

/// Code generation errors.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// An op or shape this code generator does not handle.
    #[error("{node}: {msg}")]
    Unsupported {
        /// node reference (`node n3 "Conv_1" (conv2d)`)
        node: String,
        /// what is unsupported
        msg: String,
    },
    /// An unknown CPU or PTX architecture name (checked before LLVM, which aborts on them).
    #[error("{0}")]
    BadTarget(String),
    /// LLVM rejected something (a compiler bug).
    #[error("LLVM: {0}")]
    Llvm(String),
    /// Linking the CPU object failed.
    #[error("linking the CPU code failed: {0}")]
    Link(String),
    /// The model does not fit in memory (or a tensor's size is not representable).
    #[error("{node}: model too large: {msg}")]
    TooLarge {
        /// node reference of the largest tensor's producer
        node: String,
        /// sizes involved
        msg: String,
    },
    /// Writing the artifact failed.
    #[error("artifact: {0}")]
    Artifact(#[from] secc_artifact::FormatError),
}

impl From<inkwell::builder::BuilderError> for CodegenError {
    fn from(e: inkwell::builder::BuilderError) -> Self {
        CodegenError::Llvm(e.to_string())
    }
}
