//! secc-runtime: loads a secc artifact and runs it.
//!
//! A [`Model`] is the loaded artifact: code, weights and plan, checked once, immutable,
//! `Send + Sync` and cheap to clone, so any number of threads share one. Each caller runs it
//! through its own [`Session`], which owns a thread pool, an arena for temporaries and the
//! output buffers; sessions on one model run concurrently and give bit-identical results.
//!
//! ```
//! use secc_runtime::{Model, TensorView};
//! # // compile the shipped SE block into a scratch folder and run from there
//! # let dir = tempfile::tempdir().unwrap();
//! # let onnx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/se_block.onnx");
//! # secc_driver::compile_file(&onnx, &dir.path().join("se_block.bin"), &Default::default()).unwrap();
//! # std::env::set_current_dir(dir.path()).unwrap();
//!
//! let model = Model::load("se_block.bin".as_ref())?;
//! for io in model.inputs() {
//!     println!("input {io}"); // x: float32[N, 64, 56, 56]
//! }
//! let mut session = model.session(0)?; // 0 threads: one per core
//! let shape = [1, 64, 56, 56];
//! let x = vec![0.5f32; shape.iter().product()];
//! let outputs = session.run(&[TensorView::new(&shape, &x)?])?;
//! println!("{:?}", outputs[0].shape);
//! # Ok::<(), secc_runtime::RuntimeError>(())
//! ```
//!
//! Loading checks the whole file (format version, checksums, target, CPU features) before
//! any code from it is mapped; see [`Model::load`] for the trust model. Running binds the
//! symbolic batch size from the inputs, plans memory (temporaries share an arena by
//! liveness; the plan is kept until the batch changes) and runs the kernels on the calling
//! thread and the session's pool (a short spin, then a futex sleep between kernels, so a
//! preempted thread does not stall the others on a busy machine).
//!
//! The runtime depends only on `secc-artifact`: an application that links it never pulls in
//! LLVM, egg or the compiler.
#![warn(missing_docs)]

mod barrier;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod error;
mod exec;
mod mem;
mod model;
mod session;
mod shares;
mod tensor;

pub use error::{ErrorKind, RuntimeError};
pub use model::{Dim, IoInfo, LoadOptions, Model};
pub use session::{KernelTime, RunStats, Session, PLAN_CACHE};
pub use tensor::{AsTensorView, DType, DeviceTensor, Tensor, TensorView};

/// The number of cores this process may run on: the CPU affinity mask and the cgroup CPU
/// quota (on Linux, as `std::thread::available_parallelism` reads them), not the machine's
/// core count. The default thread count; more threads than this run correctly, but
/// threads of one run then wait for each other to be scheduled.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The number of CUDA devices this process can use; an error saying why there are none
/// when there is no NVIDIA driver (or this runtime was built without its `cuda` feature).
/// Loading a CUDA artifact needs at least one.
pub fn cuda_devices() -> Result<usize, RuntimeError> {
    #[cfg(feature = "cuda")]
    {
        cuda::device_count()
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(RuntimeError::Device(
            "this runtime was built without its `cuda` feature".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn model_is_shareable_and_sessions_move() {
        assert_send_sync::<Model>();
        assert_send::<Session>();
        assert_send_sync::<RuntimeError>();
    }
}
