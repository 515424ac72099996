//! secc_driver: what `secc MODEL -o OUT` does, as a library call ([`compile_file`]), and the
//! rules it shares with the CLI: option checks and which files may be replaced. The CLI
//! (`main.rs`) and the Python package (`python/`) both compile through here, so a binding
//! cannot drift from the command line. Errors are `anyhow` chains, as in the CLI: they are
//! only ever shown to a person (the Python package raises them with every cause).
#![forbid(unsafe_code)]

pub mod files;

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The options of `secc MODEL -o OUT` that change the artifact.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// `cpu` or `cuda`
    pub target: String,
    /// CPU for `cpu`: `native`, `x86-64`..`x86-64-v4` or an LLVM 19 CPU name
    pub cpu: String,
    /// PTX architecture for `cuda` (sm_35 .. sm_90)
    pub arch: String,
    /// symbolic input dimensions fixed to a value (`--fix-dim NAME=VALUE`)
    pub fix_dims: BTreeMap<String, u64>,
    /// input shapes (`--input-shape NAME=D0,D1,..`): `Some(v)` fixes a dimension (a symbolic
    /// one takes the value, a known one must equal it), `None` keeps it as it is
    pub input_shapes: BTreeMap<String, Vec<Option<u64>>>,
    /// refuse models needing more than this many GiB at batch 1 (default: physical memory)
    pub max_memory_gib: Option<f64>,
    /// fuse SE blocks (`--no-fuse` turns it off)
    pub fuse: bool,
    /// replace an existing regular file that is not a secc artifact (`--force`)
    pub force: bool,
    /// Winograd forms for 3x3 convolutions (`--no-winograd` turns them off)
    pub winograd: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            target: "cpu".into(),
            cpu: "native".into(),
            arch: "sm_80".into(),
            fix_dims: BTreeMap::new(),
            input_shapes: BTreeMap::new(),
            max_memory_gib: None,
            fuse: true,
            force: false,
            winograd: true,
        }
    }
}

/// What [`compile_file`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// artifact size in bytes
    pub bytes: usize,
    /// SE blocks fused
    pub se_blocks: usize,
}

/// Compiles the ONNX model at `model` into the artifact `out` (written atomically; only a
/// secc artifact, or with `force` another regular file, is replaced).
pub fn compile_file(model: &Path, out: &Path, o: &CompileOptions) -> Result<Compiled> {
    let target = target(&o.target, &o.cpu, &o.arch)?;
    let memory_limit = memory_limit(o.max_memory_gib)?;
    check_output(model, out, o.force)?;
    for (name, &v) in &o.fix_dims {
        if v == 0 {
            bail!("fix-dim {name}: a dimension must be at least 1");
        }
    }
    let mut fixed_dims = o.fix_dims.clone();
    input_shape_dims(model, &o.input_shapes, &mut fixed_dims)?;
    let opts = secc_onnx::ImportOptions { fixed_dims };
    let mut g = secc_onnx::import_file(model, &opts)
        .with_context(|| format!("importing {}", model.display()))?;
    let t = secc_passes::pipeline::TargetOptions {
        block: secc_codegen::vector_block(&target),
    };
    let mut passes = if o.fuse {
        secc_passes::pipeline::default_pipeline()
    } else {
        secc_passes::pipeline::no_fuse_pipeline()
    };
    passes.extend(secc_passes::pipeline::lowering(&t));
    secc_passes::PassManager::new(passes)
        .run(&mut g, |_, _| {})
        .with_context(|| format!("optimising {}", model.display()))?;
    let se_blocks = g
        .node_ids()
        .into_iter()
        .filter(|n| g.node(*n).op.is_se_block())
        .count();
    let opts = secc_codegen::CodegenOptions {
        target,
        compiler_version: format!("secc {}", env!("CARGO_PKG_VERSION")),
        memory_limit,
        gpu_form: false,
        winograd: o.winograd,
    };
    let bytes = secc_codegen::compile(&g, &opts)
        .with_context(|| format!("generating code for {:?}", g.name))?;
    files::write_atomic(out, &bytes)?;
    Ok(Compiled {
        bytes: bytes.len(),
        se_blocks,
    })
}

/// `NAME=VALUE` flags (`--fix-dim`); the importer checks that each name exists in the model.
pub fn fixed_dims(flags: &[String]) -> Result<BTreeMap<String, u64>> {
    let mut dims = BTreeMap::new();
    for f in flags {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("--fix-dim {f:?}: expected NAME=VALUE"))?;
        let v: u64 = v
            .parse()
            .with_context(|| format!("--fix-dim {f:?}: {v:?} is not a positive integer"))?;
        if v == 0 {
            bail!("--fix-dim {f:?}: a dimension must be at least 1");
        }
        dims.insert(k.to_string(), v);
    }
    Ok(dims)
}

/// `--input-shape NAME=D0,D1,..` flags (a `?` or `-1` keeps that dimension as it is).
pub fn input_shapes(flags: &[String]) -> Result<BTreeMap<String, Vec<Option<u64>>>> {
    let mut out = BTreeMap::new();
    for f in flags {
        let (name, list) = f
            .split_once('=')
            .with_context(|| format!("--input-shape {f:?}: expected NAME=D0,D1,..."))?;
        let dims: Vec<Option<u64>> = list
            .split(',')
            .map(|d| match d.trim() {
                "?" | "-1" => Some(None),
                d => d.parse::<u64>().ok().filter(|v| *v > 0).map(Some),
            })
            .collect::<Option<_>>()
            .with_context(|| {
                format!("--input-shape {f:?}: dimensions must be integers >= 1 or ?")
            })?;
        if out.insert(name.to_string(), dims).is_some() {
            bail!("--input-shape: input {name:?} given twice");
        }
    }
    Ok(out)
}

/// Turns input shapes into fixed symbolic dimensions (added to `dims`), checking each
/// against the model: the input exists, the rank matches, known extents agree, a symbol is
/// not fixed to two values.
pub fn input_shape_dims(
    model: &Path,
    shapes: &BTreeMap<String, Vec<Option<u64>>>,
    dims: &mut BTreeMap<String, u64>,
) -> Result<()> {
    if shapes.is_empty() {
        return Ok(());
    }
    let g = secc_onnx::import_file(model, &secc_onnx::ImportOptions::default())
        .with_context(|| format!("importing {}", model.display()))?;
    for (name, want) in shapes {
        let flag = format!("--input-shape {name}");
        let Some((_, id)) = g.inputs.iter().find(|(n, _)| n == name) else {
            let names: Vec<&str> = g.inputs.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "{flag}: no input named {name:?} (inputs: {})",
                names.join(", ")
            );
        };
        let ty = &g.node(*id).outputs[0];
        if ty.shape.len() != want.len() {
            bail!(
                "{flag}: {} dimensions given, input {name:?} has rank {} ({})",
                want.len(),
                ty.shape.len(),
                ty.display(&g.sym_names)
            );
        }
        for (i, (d, v)) in ty.shape.iter().zip(want).enumerate() {
            let Some(v) = *v else { continue };
            match *d {
                secc_ir::Dim::Known(k) if k == v => {}
                secc_ir::Dim::Sym(s, k) if v % k == 0 => {
                    let sym = g.sym_names[s.0 as usize].clone();
                    if dims.insert(sym.clone(), v / k).is_some_and(|o| o != v / k) {
                        bail!("{flag}: dimension {sym:?} fixed to two values");
                    }
                }
                _ => bail!(
                    "{flag}: dimension {i} of input {name:?} is {}, not {v}",
                    d.display(&g.sym_names)
                ),
            }
        }
    }
    Ok(())
}

/// The code target `kind` (`cpu` or `cuda`) with its CPU or architecture name checked (LLVM
/// would abort the process on an unknown one).
pub fn target(kind: &str, cpu: &str, arch: &str) -> Result<secc_codegen::Target> {
    let (t, flag) = match kind {
        "cuda" => (secc_codegen::Target::Cuda { arch: arch.into() }, "--arch"),
        "cpu" => (secc_codegen::Target::Cpu { cpu: cpu.into() }, "--cpu"),
        other => bail!("--target {other:?}: expected cpu or cuda"),
    };
    secc_codegen::check_target(&t).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    Ok(t)
}

/// Refuses an output path that must not be replaced, before any work is done.
pub fn check_output(model: &Path, out: &Path, force: bool) -> Result<()> {
    if same_file(model, out) {
        bail!(
            "refusing to write the artifact over the input model {}",
            model.display()
        );
    }
    if files::check_replaceable(out)? && !force && !files::is_artifact(out) {
        bail!(
            "refusing to overwrite {}: it exists and is not a secc artifact (use --force)",
            out.display()
        );
    }
    Ok(())
}

/// The memory limit from `--max-memory` GiB (default: physical memory).
pub fn memory_limit(gib: Option<f64>) -> Result<Option<u64>> {
    Ok(match gib {
        Some(g) if g > 0.0 => Some((g * (1u64 << 30) as f64) as u64),
        Some(g) => bail!("--max-memory must be positive, got {g}"),
        None => physical_memory(),
    })
}

/// Physical memory of this machine (`MemTotal` in /proc/meminfo), if known.
pub fn physical_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Whether two paths name the same existing file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
