//! The model: a checked artifact's manifest, its weights and its loaded code, immutable
//! once loaded and shared by every [`Session`] on it.
use crate::cpu::{self, Code};
use crate::session::Session;
use crate::{DType, RuntimeError};
use secc_artifact::{Artifact, BufferKind, DimDecl, Manifest};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// One dimension of a model input or output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    /// a fixed extent
    Fixed(u64),
    /// `multiple` times the symbolic dimension `name` (e.g. the batch `N`), bound from the
    /// inputs' shapes at each run
    Symbolic {
        /// the symbol's name in the model
        name: String,
        /// its multiplier (1 for a plain symbol)
        multiple: u64,
    },
    /// an expression over the symbols, as text (`(H - 1) / 2 + 1`)
    Expr(String),
}

impl Dim {
    /// The fixed extent, or `None` for a symbolic dimension.
    pub fn fixed(&self) -> Option<u64> {
        match *self {
            Dim::Fixed(v) => Some(v),
            Dim::Symbolic { .. } | Dim::Expr(_) => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Symbolic { name, multiple: 1 } => write!(f, "{name}"),
            Dim::Symbolic { name, multiple } => write!(f, "{multiple}*{name}"),
            Dim::Expr(e) => write!(f, "{e}"),
        }
    }
}

/// A model input or output: its name, element type and shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IoInfo {
    /// the name in the ONNX model
    pub name: String,
    /// element type
    pub dtype: DType,
    /// extents, fixed or symbolic
    pub shape: Vec<Dim>,
}

impl fmt::Display for IoInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(Dim::to_string).collect();
        write!(
            f,
            "{}: {}[{}]",
            self.name,
            self.dtype.name(),
            dims.join(", ")
        )
    }
}

/// What loading produced; shared behind an `Arc` by the model handle and its sessions.
pub(crate) struct Loaded {
    pub manifest: Manifest,
    /// the weights section as f32, the only copy kept (the file's bytes are dropped)
    pub weights: Vec<f32>,
    pub code: Code,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
}

/// A loaded model: immutable, cheap to clone (a handle), `Send + Sync`. Any number of
/// threads may hold it; each runs it through its own [`Session`].
#[derive(Clone)]
pub struct Model {
    pub(crate) inner: Arc<Loaded>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.inner.manifest.model_name)
            .field("inputs", &self.inner.inputs)
            .field("outputs", &self.inner.outputs)
            .finish()
    }
}

impl Model {
    /// Loads an artifact.
    ///
    /// Trust model: an artifact contains native code, which runs in this process. Loading
    /// first verifies the format version, every checksum, the target triple and the CPU
    /// features, so damaged or foreign files are rejected before any of their code is
    /// mapped; it cannot make a deliberately malicious file safe, so load only artifacts
    /// produced by secc, as you would only load shared libraries you trust.
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|e| RuntimeError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_bytes(bytes)
    }

    /// Loads an artifact from memory (the bytes are dropped once loaded).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, RuntimeError> {
        let artifact = Self::check(bytes)?;
        let m = &artifact.manifest;
        let so = artifact.section("cpu_code").unwrap_or(&[]);
        let weights = weights_of(artifact.section("weights").unwrap_or(&[]))?;
        let names: Vec<String> = m.kernels.iter().map(|k| k.name.clone()).collect();
        let code = cpu::load(so, &names)?;
        let wcrc = m.section("weights").map(|s| s.crc32).unwrap_or(0);
        if secc_artifact::layout_digest(m, wcrc)? != code.digest {
            return Err(RuntimeError::Load(
                "the manifest or weights do not match the code they were compiled with \
                 (the artifact was edited after compilation); recompile the model"
                    .into(),
            ));
        }
        let manifest = artifact.manifest;
        let io = |list: &[secc_artifact::IoDecl]| -> Vec<IoInfo> {
            list.iter().map(|d| io_info(&manifest, d)).collect()
        };
        let (inputs, outputs) = (io(&manifest.inputs), io(&manifest.outputs));
        Ok(Model {
            inner: Arc::new(Loaded {
                manifest,
                weights,
                code,
                inputs,
                outputs,
            }),
        })
    }

    /// Every check loading makes before the code is mapped: the format (version, checksums,
    /// manifest consistency), the target against this host, the code section's presence,
    /// and every weight buffer inside the weights section. Maps and runs nothing (the
    /// `artifact_load` fuzz target drives it). Loading then also checks the code's layout
    /// digest, which needs the code mapped.
    pub fn check(bytes: Vec<u8>) -> Result<Artifact, RuntimeError> {
        let artifact = Artifact::parse(bytes)?;
        let m = &artifact.manifest;
        let t = m
            .targets
            .first()
            .ok_or_else(|| RuntimeError::Target("artifact names no target".into()))?;
        cpu::check_target(t)?;
        if artifact.section("cpu_code").is_none() {
            return Err(RuntimeError::Load(
                "artifact has no cpu_code section".into(),
            ));
        }
        let wfloats = artifact.section("weights").map_or(0, |w| w.len() / 4) as u64;
        for (i, b) in m.buffers.iter().enumerate() {
            if let BufferKind::Weight { offset } = b.kind {
                let end = DimDecl::elements(&b.shape, &[]).and_then(|n| n.checked_add(offset / 4));
                if offset % 4 != 0 || end.is_none_or(|e| e > wfloats) {
                    return Err(RuntimeError::Load(format!(
                        "weight buffer {i} lies outside the weights section"
                    )));
                }
            }
        }
        Ok(artifact)
    }

    /// A session that runs this model with `threads` threads (0: one per core this process
    /// may use, [`available_cores`](crate::available_cores)).
    pub fn session(&self, threads: usize) -> Result<Session, RuntimeError> {
        Session::new(self.clone(), threads)
    }

    /// The artifact's manifest (buffers, kernels, symbols; what `secc inspect` shows).
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// The model's name (the ONNX graph name).
    pub fn name(&self) -> &str {
        &self.inner.manifest.model_name
    }

    /// Inputs in the order [`Session::run`] takes them.
    pub fn inputs(&self) -> &[IoInfo] {
        &self.inner.inputs
    }

    /// Outputs in the order [`Session::run`] returns them.
    pub fn outputs(&self) -> &[IoInfo] {
        &self.inner.outputs
    }

    /// Input names in order.
    pub fn input_names(&self) -> Vec<&str> {
        self.inner.inputs.iter().map(|i| i.name.as_str()).collect()
    }

    /// Output names in order.
    pub fn output_names(&self) -> Vec<&str> {
        self.inner.outputs.iter().map(|i| i.name.as_str()).collect()
    }

    /// The names of the model's symbolic dimensions (the batch), bound at each run.
    pub fn symbols(&self) -> &[String] {
        &self.inner.manifest.symbols
    }
}

/// The weights section as f32 in a buffer from the runtime's allocator (aligned, huge
/// pages when large), converted in one pass.
fn weights_of(bytes: &[u8]) -> Result<Vec<f32>, RuntimeError> {
    let values = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    crate::mem::collected(bytes.len() / 4, values)
}

fn io_info(m: &Manifest, io: &secc_artifact::IoDecl) -> IoInfo {
    let b = &m.buffers[io.buffer as usize];
    IoInfo {
        name: io.name.clone(),
        dtype: if b.dtype == "i64" {
            DType::I64
        } else {
            DType::F32
        },
        shape: b
            .shape
            .iter()
            .map(|d| match d {
                DimDecl::Known(v) => Dim::Fixed(*v),
                DimDecl::Sym { sym, coeff } => Dim::Symbolic {
                    name: m.symbols[*sym as usize].clone(),
                    multiple: *coeff,
                },
                DimDecl::Expr { .. } => Dim::Expr(d.display(&m.symbols)),
            })
            .collect(),
    }
}
