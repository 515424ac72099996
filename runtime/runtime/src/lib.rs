//! secc-runtime: loads a secc artifact and runs it.
//!
//! ```no_run
//! use secc_runtime::{Model, Tensor};
//! let model = Model::load("se_block.bin".as_ref())?;
//! let x = Tensor::new(vec![1, 64, 56, 56], vec![0.5; 64 * 56 * 56])?;
//! let outputs = model.run(&[x])?;
//! # Ok::<(), secc_runtime::RuntimeError>(())
//! ```
//!
//! Loading checks the whole file (format version, checksums, target, CPU features) before
//! any code from it is mapped; see [`Model::load`] for the trust model. Running binds the
//! symbolic batch size from the inputs, plans memory (temporaries share an arena by
//! liveness) and runs the kernels on a thread pool: every kernel is called once per thread
//! with `(tid, nthreads)`, with a barrier between kernels (a short spin, then a futex
//! sleep, so a preempted thread does not stall the others on a busy machine).
//!
//! The runtime depends only on `secc-artifact`: an application that links it never pulls in
//! LLVM, egg or the compiler.
#![warn(missing_docs)]

mod barrier;
mod cpu;
mod exec;
mod mem;
mod model;
mod shares;

pub use model::{DType, Model, ModelInfo, RunStats, Tensor};

/// The number of cores this process may run on: the CPU affinity mask and the cgroup CPU
/// quota (on Linux, as `std::thread::available_parallelism` reads them), not the machine's
/// core count. The default thread count; more threads than this run correctly, but
/// threads of one run then wait for each other to be scheduled.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Runtime errors.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The file could not be read.
    #[error("cannot read artifact {path}: {source}")]
    Io {
        /// path
        path: String,
        /// cause
        #[source]
        source: std::io::Error,
    },
    /// The artifact is damaged, truncated or of another format version.
    #[error(transparent)]
    Format(#[from] secc_artifact::FormatError),
    /// The artifact was built for another machine.
    #[error("artifact target mismatch: {0}")]
    Target(String),
    /// The artifact holds PTX for NVIDIA GPUs.
    #[error("this artifact targets CUDA ({0}); this runtime executes CPU artifacts only (GPU execution is not available yet). Compile with `--target cpu` to run it here")]
    CudaArtifact(String),
    /// Loading the code failed.
    #[error("cannot load the artifact's code: {0}")]
    Load(String),
    /// Memory for the model could not be allocated.
    #[error("out of memory: {0}")]
    Memory(String),
    /// Bad inputs to `run`.
    #[error("invalid input: {0}")]
    Input(String),
}
