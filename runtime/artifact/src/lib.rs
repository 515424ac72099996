//! secc-artifact: the artifact file format shared by the compiler (writer) and the runtime
//! (validating reader). It depends on neither side.
//!
//! Layout (all integers little-endian; docs/artifact.md has the full description):
//!
//! ```text
//! 0   magic           8 bytes  "SECCART\0"
//! 8   format_version  u32
//! 12  manifest_len    u32
//! 16  manifest_crc32  u32
//! 20  reserved        u32 (0)
//! 24  manifest        manifest_len bytes of UTF-8 JSON (Manifest)
//! ..  zero padding to a 64-byte boundary, then each section 64-byte aligned
//! ```
//!
//! The manifest lists every section with its offset, length and CRC-32. [`Artifact::parse`]
//! checks magic, version, manifest checksum, section bounds and every section checksum
//! before it returns, so nothing from a damaged file is ever used.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

mod dim;
mod launch;
pub use dim::{check_expr, ConstraintDecl, DimDecl, DimOp, Relation, MAX_EXPR_LEN};
pub use launch::{
    LaunchDecl, LaunchDims, ParamDecl, MAX_BLOCK_THREADS, MAX_GRID_X, MAX_GRID_YZ, MAX_SHARED_BYTES,
};

/// File magic.
pub const MAGIC: &[u8; 8] = b"SECCART\0";
/// Version of the layout and manifest schema this crate reads and writes (2: buffers may be
/// `i64`; the code embeds a layout digest; kernels carry `barrier`. 3: dimensions may be
/// expressions over the symbols; the manifest lists the constraints on the symbols. 4: CUDA
/// kernels carry their launch contract, [`LaunchDecl`]; the PTX embeds the layout digest).
pub const FORMAT_VERSION: u32 = 4;
/// Name of the code's exported `u32` that holds [`layout_digest`] (CPU code: an exported
/// symbol; PTX: a `.global .u32` initialised in the text).
pub const DIGEST_SYMBOL: &str = "secc_layout_digest";

/// The digest the code generator embeds in the code of an artifact (as [`DIGEST_SYMBOL`]):
/// CRC-32 of the manifest without its section table, followed by the weights' CRC-32.
/// The runtime compares it with the manifest and weights it read, so a manifest or weights
/// edited after compilation (even with every checksum recomputed) do not match the code
/// that was compiled for them, and are rejected before any kernel runs.
pub fn layout_digest(manifest: &Manifest, weights_crc32: u32) -> Result<u32, FormatError> {
    let mut m = manifest.clone();
    m.sections.clear();
    m.format_version = FORMAT_VERSION;
    let mut h = crc32fast::Hasher::new();
    h.update(&serde_json::to_vec(&m).map_err(|e| FormatError::Manifest(e.to_string()))?);
    h.update(&weights_crc32.to_le_bytes());
    Ok(h.finalize())
}

/// Section alignment in bytes.
pub const ALIGN: usize = 64;
const HEADER_LEN: usize = 24;

/// Errors while reading or writing an artifact.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Too short, or not starting with the magic.
    #[error("not a secc artifact: {0}")]
    NotArtifact(String),
    /// Written by an incompatible format version.
    #[error("artifact format version {found} is not supported by this runtime (supports version {supported}); recompile the model with a matching secc")]
    Version {
        /// version in the file
        found: u32,
        /// version supported here
        supported: u32,
    },
    /// A checksum did not match: the file is damaged.
    #[error("artifact is corrupted: checksum mismatch in {0}")]
    Checksum(String),
    /// The file ends before a declared part.
    #[error("artifact is truncated: {0}")]
    Truncated(String),
    /// The manifest is not valid.
    #[error("artifact manifest is invalid: {0}")]
    Manifest(String),
    /// I/O error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BufferKind {
    /// graph input number `index`
    Input {
        /// position in [`Manifest::inputs`]
        index: u32,
    },
    /// graph output number `index`
    Output {
        /// position in [`Manifest::outputs`]
        index: u32,
    },
    /// weights at `offset` (bytes) in the weights section
    Weight {
        /// byte offset, 64-aligned
        offset: u64,
    },
    /// intermediate, allocated by the runtime's memory plan
    Temp,
    /// same memory as another buffer (a reshape)
    Alias {
        /// buffer id aliased
        of: u32,
    },
}

/// A buffer: a tensor the kernels read or write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferDecl {
    /// element type name: "f32", or "i64" (int64 results: argmax indices, shapes)
    pub dtype: String,
    /// extents
    pub shape: Vec<DimDecl>,
    /// what it is
    #[serde(flatten)]
    pub kind: BufferKind,
}

/// A named graph input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoDecl {
    /// name from the model
    pub name: String,
    /// buffer id
    pub buffer: u32,
}

/// One kernel launch in the execution order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelDecl {
    /// symbol name in the code section(s)
    pub name: String,
    /// op kind, e.g. "squeeze_excite", "elementwise", "conv2d"
    pub kind: String,
    /// ONNX node(s) it came from
    pub origin: String,
    /// buffer ids, in the kernel's argument order
    pub args: Vec<u32>,
    /// buffers it writes (a subset of args), for the memory planner
    pub writes: Vec<u32>,
    /// CUDA artifacts: how the kernel is launched (grid, block, shared memory, parameter
    /// list); absent for CPU kernels
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchDecl>,
    /// CPU: the body waits at a barrier, so its `nthreads` shares must all run at once;
    /// otherwise the runtime may cut the work into more shares and run them in any order
    /// on any thread. Absent (artifacts from before this field): true, the safe reading.
    #[serde(default = "yes")]
    pub barrier: bool,
}

fn yes() -> bool {
    true
}

/// Code target of the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetDecl {
    /// "cpu" or "cuda"
    pub kind: String,
    /// LLVM target triple
    pub triple: String,
    /// LLVM CPU name (`x86-64-v3`, `sapphirerapids`) or PTX arch (`sm_80`)
    pub cpu: String,
    /// features the code requires, e.g. ["avx2", "fma"]
    pub features: Vec<String>,
}

/// A byte range of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionDecl {
    /// "weights", "cpu_code" (an ELF shared object) or "ptx" (PTX text)
    pub kind: String,
    /// absolute file offset, 64-aligned
    pub offset: u64,
    /// length in bytes
    pub len: u64,
    /// CRC-32 of the bytes
    pub crc32: u32,
}

/// Everything about the artifact except the bytes of its sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// == FORMAT_VERSION
    pub format_version: u32,
    /// version of the secc that wrote it
    pub compiler_version: String,
    /// graph name
    pub model_name: String,
    /// code target(s)
    pub targets: Vec<TargetDecl>,
    /// names of symbolic dimensions (the batch)
    pub symbols: Vec<String>,
    /// all buffers, indexed by id
    pub buffers: Vec<BufferDecl>,
    /// graph inputs in order
    pub inputs: Vec<IoDecl>,
    /// graph outputs in order
    pub outputs: Vec<IoDecl>,
    /// kernels in execution order
    pub kernels: Vec<KernelDecl>,
    /// number of fused SE blocks
    pub se_blocks: u32,
    /// conditions on the symbols, checked when a run binds them
    #[serde(default)]
    pub constraints: Vec<ConstraintDecl>,
    /// sections; filled by the writer
    pub sections: Vec<SectionDecl>,
}

impl BufferDecl {
    /// Size of one element in 4-byte words (1 for f32, 2 for i64); `validate` has checked
    /// the dtype.
    pub fn elem_words(&self) -> usize {
        if self.dtype == "i64" {
            2
        } else {
            1
        }
    }
}

impl Manifest {
    /// Checks internal references (buffer ids, aliases, io) so readers can index safely.
    pub fn validate(&self) -> Result<(), FormatError> {
        let nb = self.buffers.len() as u32;
        let bad = |m: String| Err(FormatError::Manifest(m));
        for (i, b) in self.buffers.iter().enumerate() {
            if b.dtype != "f32" && b.dtype != "i64" {
                return bad(format!("buffer {i}: dtype {:?} unsupported", b.dtype));
            }
            if b.dtype == "i64"
                && matches!(b.kind, BufferKind::Input { .. } | BufferKind::Weight { .. })
            {
                return bad(format!(
                    "buffer {i}: i64 inputs and weights are not supported"
                ));
            }
            for d in &b.shape {
                if let Err(m) = d.check(self.symbols.len()) {
                    return bad(format!("buffer {i}: {m}"));
                }
            }
            // sizes in bytes must be representable with every symbol at 1 (an expression
            // may be undefined there: the binding is checked at run time)
            let exprs = b.shape.iter().any(|d| matches!(d, DimDecl::Expr { .. }));
            if !exprs
                && DimDecl::elements(&b.shape, &vec![1; self.symbols.len()])
                    .and_then(|n| n.checked_mul(8))
                    .is_none()
            {
                return bad(format!("buffer {i}: size overflows"));
            }
            match b.kind {
                BufferKind::Alias { of } if of >= nb || of as usize == i => {
                    return bad(format!("buffer {i}: bad alias {of}"))
                }
                BufferKind::Alias { of }
                    if matches!(self.buffers[of as usize].kind, BufferKind::Alias { .. }) =>
                {
                    return bad(format!("buffer {i}: alias of an alias"))
                }
                BufferKind::Input { index } if index as usize >= self.inputs.len() => {
                    return bad(format!("buffer {i}: bad input index"))
                }
                BufferKind::Output { index } if index as usize >= self.outputs.len() => {
                    return bad(format!("buffer {i}: bad output index"))
                }
                _ => {}
            }
        }
        for (list, input) in [(&self.inputs, true), (&self.outputs, false)] {
            for (i, io) in list.iter().enumerate() {
                let want = match input {
                    true => BufferKind::Input { index: i as u32 },
                    false => BufferKind::Output { index: i as u32 },
                };
                if io.buffer >= nb || self.buffers[io.buffer as usize].kind != want {
                    return bad(format!("io {:?}: bad buffer {}", io.name, io.buffer));
                }
            }
        }
        let root = |b: u32| match self.buffers[b as usize].kind {
            BufferKind::Alias { of } => of,
            _ => b,
        };
        for (i, c) in self.constraints.iter().enumerate() {
            for d in [&c.lhs, &c.rhs] {
                if let Err(m) = d.check(self.symbols.len()) {
                    return bad(format!("constraint {i}: {m}"));
                }
            }
        }
        let cuda = self.targets.first().is_some_and(|t| t.kind == "cuda");
        for k in &self.kernels {
            match &k.launch {
                Some(l) if cuda => {
                    if let Err(m) = l.check(self.symbols.len(), &k.args) {
                        return bad(format!("kernel {}: launch: {m}", k.name));
                    }
                }
                None if !cuda => {}
                Some(_) => {
                    return bad(format!(
                        "kernel {}: a launch contract in a CPU artifact",
                        k.name
                    ))
                }
                None => return bad(format!("kernel {}: no launch contract", k.name)),
            }
            if k.args.iter().chain(&k.writes).any(|&a| a >= nb) {
                return bad(format!("kernel {}: bad buffer id", k.name));
            }
            for &w in &k.writes {
                let read_only = matches!(
                    self.buffers[root(w) as usize].kind,
                    BufferKind::Input { .. } | BufferKind::Weight { .. }
                );
                if !k.args.contains(&w) || read_only {
                    return bad(format!("kernel {}: writes buffer {w}", k.name));
                }
            }
        }
        Ok(())
    }

    /// Checks a binding of the symbols: every constraint holds and every buffer's size is
    /// defined and fits in memory words. The error names the node (for a constraint) or the
    /// buffer, and the values.
    pub fn check_binding(&self, syms: &[u64]) -> Result<(), String> {
        for c in &self.constraints {
            c.check(syms, &self.symbols)?;
        }
        for (i, b) in self.buffers.iter().enumerate() {
            let words = DimDecl::elements(&b.shape, syms)
                .and_then(|n| n.checked_mul(b.elem_words() as u64))
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n <= isize::MAX as usize / 4);
            if words.is_none() {
                let dims: Vec<String> = b.shape.iter().map(|d| d.display(&self.symbols)).collect();
                let binding: Vec<String> = self
                    .symbols
                    .iter()
                    .zip(syms)
                    .map(|(n, v)| format!("{n} = {v}"))
                    .collect();
                return Err(format!(
                    "buffer {i} [{}] has no valid size for {}: the inputs are too small or too large for this model",
                    dims.join(", "),
                    binding.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// A representative binding to size or run the model at: every symbol that is an
    /// input's leading dim (the batch) at `batch`, every other (an image side) at `side`.
    pub fn sizing_binding(&self, batch: u64, side: u64) -> Vec<u64> {
        let mut v = vec![side; self.symbols.len()];
        for io in &self.inputs {
            let lead = self
                .buffers
                .get(io.buffer as usize)
                .and_then(|b| b.shape.first());
            if let Some(DimDecl::Sym { sym, coeff: 1 }) = lead {
                if let Some(s) = v.get_mut(*sym as usize) {
                    *s = batch;
                }
            }
        }
        v
    }

    /// Places every temporary buffer in one arena for a symbol binding: a buffer lives from
    /// the first kernel that touches it (through any alias) to the last; buffers whose lives
    /// overlap get disjoint ranges (greedy first fit, largest first, 64-byte granules).
    pub fn memory_plan(&self, syms: &[u64]) -> MemoryPlan {
        let sizes: Vec<usize> = self
            .buffers
            .iter()
            .map(|b| {
                // saturating: a size that does not fit fails at allocation, with an error
                DimDecl::elements(&b.shape, syms)
                    .and_then(|n| n.checked_mul(b.elem_words() as u64))
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(usize::MAX)
            })
            .collect();
        let root = |b: u32| match self.buffers[b as usize].kind {
            BufferKind::Alias { of } => of,
            _ => b,
        };
        let nb = self.buffers.len();
        let mut first = vec![usize::MAX; nb];
        let mut last = vec![0usize; nb];
        for (s, k) in self.kernels.iter().enumerate() {
            for &a in &k.args {
                let r = root(a) as usize;
                first[r] = first[r].min(s);
                last[r] = last[r].max(s);
            }
        }
        let mut offsets = vec![0usize; nb];
        let mut placed: Vec<(usize, usize, usize, usize)> = vec![]; // (off, len, first, last)
        let mut order: Vec<usize> = (0..nb)
            .filter(|&b| self.buffers[b].kind == BufferKind::Temp && first[b] != usize::MAX)
            .collect();
        order.sort_by_key(|&b| std::cmp::Reverse(sizes[b]));
        let mut arena = 0usize;
        let mut total = 0usize;
        for b in order {
            let len = sizes[b].div_ceil(16).saturating_mul(16);
            total = total.saturating_add(len);
            let mut off = 0usize;
            let mut conflicts: Vec<(usize, usize)> = placed
                .iter()
                .filter(|p| !(p.3 < first[b] || last[b] < p.2))
                .map(|p| (p.0, p.0 + p.1))
                .collect();
            conflicts.sort();
            for (s, e) in conflicts {
                if off.saturating_add(len) <= s {
                    break;
                }
                off = off.max(e);
            }
            offsets[b] = off;
            placed.push((off, len, first[b], last[b]));
            arena = arena.max(off.saturating_add(len));
        }
        MemoryPlan {
            offsets,
            arena_floats: arena,
            unshared_floats: total,
        }
    }

    /// The section of a kind, if present.
    pub fn section(&self, kind: &str) -> Option<&SectionDecl> {
        self.sections.iter().find(|s| s.kind == kind)
    }
}

/// Where each temporary lives in the arena, for one binding of the symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// offset of each buffer in 4-byte words (meaningful for `Temp` buffers)
    pub offsets: Vec<usize>,
    /// arena size in f32 elements
    pub arena_floats: usize,
    /// what the temporaries would take without reuse, in f32 elements
    pub unshared_floats: usize,
}

/// Serialises a manifest and sections into artifact bytes; fills `sections` in the manifest.
pub fn write(mut manifest: Manifest, sections: &[(&str, &[u8])]) -> Result<Vec<u8>, FormatError> {
    manifest.format_version = FORMAT_VERSION;
    // Offsets depend on the manifest length, which depends on the offsets: iterate until the
    // padded length stops changing (converges in one or two rounds).
    let mut start = 0usize;
    loop {
        let mut off = start;
        manifest.sections = sections
            .iter()
            .map(|(kind, b)| {
                let s = SectionDecl {
                    kind: kind.to_string(),
                    offset: off as u64,
                    len: b.len() as u64,
                    crc32: crc32fast::hash(b),
                };
                off = (off + b.len()).div_ceil(ALIGN) * ALIGN;
                s
            })
            .collect();
        let json =
            serde_json::to_vec(&manifest).map_err(|e| FormatError::Manifest(e.to_string()))?;
        let need = (HEADER_LEN + json.len()).div_ceil(ALIGN) * ALIGN;
        if need == start {
            let mut out = Vec::with_capacity(off);
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            out.extend_from_slice(&(json.len() as u32).to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&json);
            for ((_, b), s) in sections.iter().zip(&manifest.sections) {
                out.resize(s.offset as usize, 0);
                out.extend_from_slice(b);
            }
            return Ok(out);
        }
        start = need;
    }
}

/// A parsed, checked artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// the manifest
    pub manifest: Manifest,
    bytes: Vec<u8>,
}

impl Artifact {
    /// Parses and checks everything: magic, version, manifest CRC and references, section
    /// bounds and CRCs.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, FormatError> {
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err(FormatError::NotArtifact("missing SECCART magic".into()));
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(FormatError::Version {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if u32_at(20) != 0 {
            return Err(FormatError::Checksum(
                "header (reserved field is not zero)".into(),
            ));
        }
        let mlen = u32_at(12) as usize;
        let mcrc = u32_at(16);
        let mend = HEADER_LEN
            .checked_add(mlen)
            .ok_or_else(|| FormatError::Truncated("manifest length".into()))?;
        if mend > bytes.len() {
            return Err(FormatError::Truncated(format!(
                "manifest needs {mend} bytes, file has {}",
                bytes.len()
            )));
        }
        let mbytes = &bytes[HEADER_LEN..mend];
        if crc32fast::hash(mbytes) != mcrc {
            return Err(FormatError::Checksum("manifest".into()));
        }
        let manifest: Manifest =
            serde_json::from_slice(mbytes).map_err(|e| FormatError::Manifest(e.to_string()))?;
        if manifest.format_version != version {
            return Err(FormatError::Manifest(
                "manifest version differs from header".into(),
            ));
        }
        manifest.validate()?;
        for s in &manifest.sections {
            let end = s
                .offset
                .checked_add(s.len)
                .ok_or_else(|| FormatError::Truncated(s.kind.clone()))?;
            if end > bytes.len() as u64 {
                return Err(FormatError::Truncated(format!(
                    "section {} ends at {end}, file has {} bytes",
                    s.kind,
                    bytes.len()
                )));
            }
            if !(s.offset as usize).is_multiple_of(ALIGN) {
                return Err(FormatError::Manifest(format!(
                    "section {} is not {ALIGN}-byte aligned",
                    s.kind
                )));
            }
            if crc32fast::hash(&bytes[s.offset as usize..end as usize]) != s.crc32 {
                return Err(FormatError::Checksum(format!("section {}", s.kind)));
            }
        }
        Ok(Artifact { manifest, bytes })
    }

    /// Reads and parses a file.
    pub fn read(path: &std::path::Path) -> Result<Self, FormatError> {
        Self::parse(std::fs::read(path)?)
    }

    /// Bytes of a section kind.
    pub fn section(&self, kind: &str) -> Option<&[u8]> {
        self.manifest
            .section(kind)
            .map(|s| &self.bytes[s.offset as usize..(s.offset + s.len) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format_version: 0,
            compiler_version: "test".into(),
            model_name: "m".into(),
            targets: vec![],
            symbols: vec!["N".into()],
            buffers: vec![BufferDecl {
                dtype: "f32".into(),
                shape: vec![DimDecl::Sym { sym: 0, coeff: 1 }, DimDecl::Known(3)],
                kind: BufferKind::Input { index: 0 },
            }],
            inputs: vec![IoDecl {
                name: "x".into(),
                buffer: 0,
            }],
            outputs: vec![],
            kernels: vec![],
            se_blocks: 0,
            constraints: vec![],
            sections: vec![],
        }
    }

    #[test]
    fn roundtrip_and_every_corruption_is_caught() {
        let bytes = write(
            sample(),
            &[("weights", &[1, 2, 3, 4, 5][..]), ("ptx", b"hello")],
        )
        .unwrap();
        let a = Artifact::parse(bytes.clone()).unwrap();
        assert_eq!(a.section("ptx").unwrap(), b"hello");
        assert_eq!(a.manifest.sections[1].offset % ALIGN as u64, 0);
        // flipping any single byte anywhere must be detected (padding aside)
        let used: Vec<std::ops::Range<usize>> = std::iter::once(
            0..HEADER_LEN + u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize,
        )
        .chain(
            a.manifest
                .sections
                .iter()
                .map(|s| s.offset as usize..(s.offset + s.len) as usize),
        )
        .collect();
        for r in used {
            for i in r {
                let mut b = bytes.clone();
                b[i] ^= 0x40;
                assert!(Artifact::parse(b).is_err(), "flip at {i} not detected");
            }
        }
        for n in [0, 7, 20, bytes.len() - 1] {
            assert!(Artifact::parse(bytes[..n].to_vec()).is_err());
        }
    }

    #[test]
    fn i64_buffers_are_accepted_and_sized_in_words() {
        let mut m = sample();
        m.buffers[0].dtype = "i64".into();
        assert!(m.validate().is_err(), "an i64 input must be refused");
        m.buffers[0].dtype = "f32".into();
        for (dtype, shape) in [("i64", 5), ("f32", 3)] {
            m.buffers.push(BufferDecl {
                dtype: dtype.into(),
                shape: vec![DimDecl::Known(shape)],
                kind: BufferKind::Temp,
            });
        }
        m.kernels.push(KernelDecl {
            name: "k".into(),
            kind: "t".into(),
            origin: String::new(),
            args: vec![1, 2],
            writes: vec![1, 2],
            launch: None,
            barrier: false,
        });
        m.validate().unwrap();
        let plan = m.memory_plan(&[1]);
        // 5 i64 = 10 words, rounded to 16; the f32 buffer after it
        assert_eq!(plan.offsets[2], 16);
        m.buffers[1].dtype = "u8".into();
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("\"u8\" unsupported"));
    }

    #[test]
    fn cuda_kernels_and_only_they_carry_a_launch_contract() {
        let mut m = sample();
        m.buffers.push(BufferDecl {
            dtype: "f32".into(),
            shape: vec![DimDecl::Known(3)],
            kind: BufferKind::Temp,
        });
        let launch = LaunchDecl {
            grid: [DimDecl::Known(1), DimDecl::Known(1), DimDecl::Known(1)],
            block: [128, 1, 1],
            shared_bytes: 0,
            params: vec![
                ParamDecl::Buffer(0),
                ParamDecl::Buffer(1),
                ParamDecl::Symbol(0),
            ],
        };
        m.kernels.push(KernelDecl {
            name: "k".into(),
            kind: "t".into(),
            origin: String::new(),
            args: vec![0, 1],
            writes: vec![1],
            launch: Some(launch.clone()),
            barrier: false,
        });
        let err = |m: &Manifest| m.validate().unwrap_err().to_string();
        assert!(err(&m).contains("a launch contract in a CPU artifact"));
        m.targets.push(TargetDecl {
            kind: "cuda".into(),
            triple: "nvptx64-nvidia-cuda".into(),
            cpu: "sm_80".into(),
            features: vec![],
        });
        m.validate().unwrap();
        m.kernels[0].launch.as_mut().unwrap().params[1] = ParamDecl::Buffer(5);
        assert!(err(&m).contains("kernel k: launch: parameter buffer 5"));
        m.kernels[0].launch = None;
        assert!(err(&m).contains("kernel k: no launch contract"));
    }

    #[test]
    fn wrong_version_is_named() {
        let mut bytes = write(sample(), &[]).unwrap();
        bytes[8] = 9;
        let e = Artifact::parse(bytes).unwrap_err().to_string();
        assert!(e.contains("format version 9"), "{e}");
    }
}
