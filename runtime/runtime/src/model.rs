//! The model: a checked artifact's manifest, its weights and its loaded code, immutable
//! once loaded and shared by every [`Session`] on it.
use crate::cpu;
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

/// The loaded code: a mapped shared object, or a PTX module on a GPU.
pub(crate) enum Code {
    Cpu(cpu::Code),
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::Program),
}

/// How to load a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// the CUDA device a CUDA artifact runs on (0: the first); CPU artifacts ignore it
    pub device: usize,
}

/// What loading produced; shared behind an `Arc` by the model handle and its sessions.
pub(crate) struct Loaded {
    pub manifest: Manifest,
    /// CPU: the weights section as f32, the only copy kept (the file's bytes are dropped);
    /// CUDA: empty (the weights live on the device)
    pub weights: crate::mem::Aligned,
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
        Self::load_with(path, &LoadOptions::default())
    }

    /// [`Model::load`] with options (the CUDA device).
    pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Self, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|e| RuntimeError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_bytes_with(bytes, opts)
    }

    /// Loads an artifact from memory (the bytes are dropped once loaded).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, RuntimeError> {
        Self::from_bytes_with(bytes, &LoadOptions::default())
    }

    /// [`Model::from_bytes`] with options (the CUDA device).
    pub fn from_bytes_with(bytes: Vec<u8>, opts: &LoadOptions) -> Result<Self, RuntimeError> {
        let artifact = Self::check(bytes)?;
        let m = &artifact.manifest;
        let mut weights = weights_of(artifact.section("weights").unwrap_or(&[]))?;
        let code = if m.targets[0].kind == "cuda" {
            load_cuda(&artifact, &mut weights, opts)?
        } else {
            let so = artifact.section("cpu_code").unwrap_or(&[]);
            let names: Vec<String> = m.kernels.iter().map(|k| k.name.clone()).collect();
            let code = cpu::load(so, &names)?;
            check_digest(m, code.digest)?;
            Code::Cpu(code)
        };
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
        match t.kind.as_str() {
            "cpu" => {
                cpu::check_target(t)?;
                if artifact.section("cpu_code").is_none() {
                    return Err(RuntimeError::Load(
                        "artifact has no cpu_code section".into(),
                    ));
                }
            }
            "cuda" => check_ptx(&artifact)?,
            k => return Err(RuntimeError::Target(format!("unknown target kind {k:?}"))),
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

    /// The GPU a CUDA artifact was loaded on (its name, ordinal and compute capability);
    /// `None` for a CPU artifact.
    pub fn device(&self) -> Option<&str> {
        match &self.inner.code {
            Code::Cpu(_) => None,
            #[cfg(feature = "cuda")]
            Code::Cuda(p) => Some(&p.device),
        }
    }

    /// The names of the model's symbolic dimensions (the batch), bound at each run.
    pub fn symbols(&self) -> &[String] {
        &self.inner.manifest.symbols
    }
}

/// Compares the digest compiled into the code with the manifest and weights read.
fn check_digest(m: &Manifest, code_digest: u32) -> Result<(), RuntimeError> {
    let wcrc = m.section("weights").map(|s| s.crc32).unwrap_or(0);
    if secc_artifact::layout_digest(m, wcrc)? != code_digest {
        return Err(RuntimeError::Load(
            "the manifest or weights do not match the code they were compiled with \
             (the artifact was edited after compilation); recompile the model"
                .into(),
        ));
    }
    Ok(())
}

/// A CUDA artifact's checks that need no GPU: the NVPTX triple, a PTX section of text,
/// and the digest in that text against the manifest and weights (so an edited artifact
/// is refused before any of its code reaches a driver).
fn check_ptx(a: &Artifact) -> Result<(), RuntimeError> {
    let t = &a.manifest.targets[0];
    if t.triple != "nvptx64-nvidia-cuda" {
        return Err(RuntimeError::Target(format!(
            "a CUDA artifact for triple {:?} (expected nvptx64-nvidia-cuda)",
            t.triple
        )));
    }
    let ptx = a
        .section("ptx")
        .ok_or_else(|| RuntimeError::Load("CUDA artifact has no ptx section".into()))?;
    let text = std::str::from_utf8(ptx)
        .map_err(|_| RuntimeError::Load("the ptx section is not text".into()))?;
    let digest = ptx_digest(text).ok_or_else(|| {
        RuntimeError::Load(format!(
            "the PTX defines no {}",
            secc_artifact::DIGEST_SYMBOL
        ))
    })?;
    check_digest(&a.manifest, digest)
}

/// The PTX's embedded layout digest (`.global .u32 secc_layout_digest = V;`, which LLVM
/// writes as a signed decimal), read from the text.
pub(crate) fn ptx_digest(ptx: &str) -> Option<u32> {
    let sym = secc_artifact::DIGEST_SYMBOL;
    ptx.lines().find_map(|l| {
        let l = l.trim();
        if !l.starts_with(".visible .global") || !l.contains(&format!(" {sym} ")) {
            return None;
        }
        let v = l.split('=').nth(1)?.trim().trim_end_matches(';').trim();
        v.parse::<u32>()
            .ok()
            .or_else(|| v.parse::<i32>().ok().map(|s| s as u32))
    })
}

/// Loads a checked CUDA artifact on the device `opts` names; the weights go to the device
/// and the host copy is dropped.
#[cfg(feature = "cuda")]
fn load_cuda(
    a: &Artifact,
    weights: &mut crate::mem::Aligned,
    opts: &LoadOptions,
) -> Result<Code, RuntimeError> {
    let ptx = std::str::from_utf8(a.section("ptx").unwrap_or(&[]))
        .map_err(|_| RuntimeError::Load("the ptx section is not text".into()))?;
    let p = crate::cuda::Program::load(&a.manifest, ptx, weights.as_slice(), opts.device)?;
    *weights = crate::mem::Aligned::default();
    Ok(Code::Cuda(p))
}

#[cfg(not(feature = "cuda"))]
fn load_cuda(
    a: &Artifact,
    _weights: &mut crate::mem::Aligned,
    _opts: &LoadOptions,
) -> Result<Code, RuntimeError> {
    Err(RuntimeError::CudaArtifact(format!(
        "PTX for {}",
        a.manifest.targets[0].cpu
    )))
}

/// The weights section as f32 in a buffer from the runtime's allocator (on a cache line,
/// so that every weight buffer, 64-byte aligned in the section, is too; huge pages when
/// large), converted in one pass.
fn weights_of(bytes: &[u8]) -> Result<crate::mem::Aligned, RuntimeError> {
    let values = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    crate::mem::Aligned::collected(bytes.len() / 4, values)
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
