//! The runtime's error type and the kinds a C caller maps to status codes.

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
    /// The artifact holds PTX for NVIDIA GPUs, and this runtime was built without CUDA.
    #[error("this artifact targets CUDA ({0}); this runtime was built without its `cuda` feature. Rebuild secc-runtime with it, or compile the model with `--target cpu`")]
    CudaArtifact(String),
    /// No usable GPU (no driver, no device, the wrong device), or a CUDA driver call
    /// failed.
    #[error("GPU: {0}")]
    Device(String),
    /// Loading the code failed.
    #[error("cannot load the artifact's code: {0}")]
    Load(String),
    /// Memory for the model could not be allocated.
    #[error("out of memory: {0}")]
    Memory(String),
    /// Bad inputs to a run, or a bad argument.
    #[error("invalid input: {0}")]
    Input(String),
}

/// What kind of error a [`RuntimeError`] is: a stable, C-friendly classification (the C
/// API returns these values as its status codes; 0 is success there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorKind {
    /// the file could not be read
    Io = 1,
    /// not a secc artifact, damaged, truncated, or another format version
    Format = 2,
    /// compiled for another machine (target triple or CPU features)
    Target = 3,
    /// a valid artifact this runtime cannot execute (a CUDA artifact)
    Unsupported = 4,
    /// the code could not be loaded, or does not match the manifest
    Load = 5,
    /// memory could not be allocated
    Memory = 6,
    /// a bad input or argument: wrong count, name, shape or dtype
    InvalidInput = 7,
    /// no usable GPU for a CUDA artifact, or a CUDA driver call failed
    Device = 9,
}

impl RuntimeError {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Io { .. } => ErrorKind::Io,
            RuntimeError::Format(_) => ErrorKind::Format,
            RuntimeError::Target(_) => ErrorKind::Target,
            RuntimeError::CudaArtifact(_) => ErrorKind::Unsupported,
            RuntimeError::Load(_) => ErrorKind::Load,
            RuntimeError::Memory(_) => ErrorKind::Memory,
            RuntimeError::Input(_) => ErrorKind::InvalidInput,
            RuntimeError::Device(_) => ErrorKind::Device,
        }
    }
}
