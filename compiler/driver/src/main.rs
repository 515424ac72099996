//! `secc`: the command-line driver. Wiring only: import (secc-onnx) -> passes (secc-passes)
//! -> code generation (secc-codegen) -> artifact; `run` and `inspect` use secc-runtime.
#![forbid(unsafe_code)]

mod explain;
mod files;
mod npy;
mod out;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use out::{note, out};
use secc_passes::{pipeline, PassManager, PrintAfter};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "secc",
    version,
    about = "Compiles ONNX CNNs, fusing every squeeze-and-excitation block into one kernel",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    compile: CompileArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile a model (the default when no subcommand is given)
    Compile(CompileArgs),
    /// Run a compiled artifact on .npy inputs
    Run(RunArgs),
    /// Describe a compiled artifact
    Inspect(InspectArgs),
    /// List every SE candidate: fused as which block, or why not
    Explain(ExplainArgs),
}

#[derive(Args)]
struct ExplainArgs {
    /// ONNX model
    model: PathBuf,
    /// Fix a symbolic dimension, e.g. `N=1` (repeatable)
    #[arg(long = "fix-dim", value_name = "NAME=VALUE")]
    fix_dim: Vec<String>,
    /// Print JSON: one object per candidate
    #[arg(long)]
    json: bool,
}

#[derive(Args, Default)]
struct CompileArgs {
    /// ONNX model to compile
    model: Option<PathBuf>,
    /// Artifact to write (atomically; replaces only a regular file, never a symlink, FIFO,
    /// device, socket or directory)
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Code target
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    target: String,
    /// CPU to compile for: `native` (this machine), a portable level (`x86-64`,
    /// `x86-64-v2`..`x86-64-v4`) or a 64-bit LLVM 19 CPU name such as `skylake`
    #[arg(long, default_value = "native")]
    cpu: String,
    /// PTX architecture for --target cuda: sm_35 .. sm_90 (what both LLVM 19 and ptxas 11.8
    /// accept; not sm_90a)
    #[arg(long, default_value = "sm_80")]
    arch: String,
    /// Print the textual IR after these passes (`all`, or a comma-separated list; `import` is
    /// the graph before any pass)
    #[arg(long = "print-after", value_name = "PASSES")]
    print_after: Option<String>,
    /// Run exactly these passes, comma-separated (default: the standard pipeline)
    #[arg(long, value_name = "PASSES", conflicts_with = "no_fuse")]
    passes: Option<String>,
    /// Run the standard pipeline without SE fusion (for comparisons)
    #[arg(long = "no-fuse")]
    no_fuse: bool,
    /// Fix a symbolic dimension of the model's inputs to a value of at least 1, e.g. `N=1`
    /// (repeatable; the name must be one of the model's)
    #[arg(long = "fix-dim", value_name = "NAME=VALUE")]
    fix_dim: Vec<String>,
    /// Print per-pass timings to stderr
    #[arg(long)]
    timings: bool,
    /// Overwrite OUTPUT even if it is a regular file that is not a secc artifact
    #[arg(long)]
    force: bool,
    /// Refuse models needing more than this many GiB at batch 1 (weights plus intermediate
    /// tensors); default: this machine's physical memory
    #[arg(long, value_name = "GIB")]
    max_memory: Option<f64>,
}

#[derive(Args)]
struct RunArgs {
    /// Compiled artifact
    artifact: PathBuf,
    /// An input as NAME=FILE.npy (repeatable); a single-input model also accepts FILE.npy
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE")]
    inputs: Vec<String>,
    /// Folder to write each output to, as <output name>.npy with every byte of the name
    /// outside [A-Za-z0-9._-] percent-encoded (`a/b` -> `a%2Fb.npy`), so names never collide;
    /// each file written is printed to stderr (and is `file` in --json)
    #[arg(long = "output-dir")]
    output_dir: Option<PathBuf>,
    /// Worker threads (default: the cores this process may use: affinity mask and cgroup quota)
    #[arg(long)]
    threads: Option<usize>,
    /// Time N runs (after warm-up) and report latency statistics
    #[arg(long, value_name = "N")]
    bench: Option<usize>,
    /// Warm-up runs before timing
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Time every kernel over N runs and list them, slowest first
    #[arg(long, value_name = "N")]
    profile: Option<usize>,
    /// Print machine-readable JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct InspectArgs {
    /// Compiled artifact
    artifact: PathBuf,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Physical memory of this machine (`MemTotal` in /proc/meminfo), if known.
fn physical_memory() -> Option<u64> {
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

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Some(Cmd::Compile(a)) => compile(a),
        Some(Cmd::Run(a)) => run(a),
        Some(Cmd::Inspect(a)) => inspect(a),
        Some(Cmd::Explain(a)) => explain_cmd(a),
        None => compile(cli.compile),
    };
    let r = r.and_then(|()| std::io::stdout().flush().map_err(out::stdout_error));
    if let Err(e) = r {
        if e.is::<out::StdoutClosed>() {
            // the reader went away (`| head`): nothing left to say, and not a failure
            std::process::exit(0);
        }
        note!("error: {e}");
        for c in e.chain().skip(1) {
            note!("  caused by: {c}");
        }
        std::process::exit(1);
    }
}

/// `--fix-dim NAME=VALUE` flags; the importer checks that each name exists in the model.
fn fixed_dims(flags: &[String]) -> Result<BTreeMap<String, u64>> {
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

/// The code target from the flags, with its CPU or architecture name checked (LLVM would
/// abort the process on an unknown one).
fn target(a: &CompileArgs) -> Result<secc_codegen::Target> {
    let t = match a.target.as_str() {
        "cuda" => secc_codegen::Target::Cuda {
            arch: a.arch.clone(),
        },
        _ => secc_codegen::Target::Cpu { cpu: a.cpu.clone() },
    };
    let flag = if a.target == "cuda" {
        "--arch"
    } else {
        "--cpu"
    };
    secc_codegen::check_target(&t).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    Ok(t)
}

/// Refuses an output path that must not be replaced, before any work is done.
fn check_output(model: &Path, out: &Path, force: bool) -> Result<()> {
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

fn compile(a: CompileArgs) -> Result<()> {
    let Some(model) = a.model.as_deref() else {
        bail!("no model given: usage `secc MODEL.onnx -o MODEL.bin` (see --help)");
    };
    if a.output.is_none() && a.print_after.is_none() {
        bail!("nothing to do: give `-o OUTPUT` to write an artifact, or `--print-after all` to see the IR");
    }
    // flags and the output path are checked before the (possibly long) compilation
    let target = target(&a)?;
    let memory_limit = match a.max_memory {
        Some(g) if g > 0.0 => Some((g * (1u64 << 30) as f64) as u64),
        Some(g) => bail!("--max-memory must be positive, got {g}"),
        None => physical_memory(),
    };
    if let Some(out) = &a.output {
        check_output(model, out, a.force)?;
    }
    let opts = secc_onnx::ImportOptions {
        fixed_dims: fixed_dims(&a.fix_dim)?,
    };
    let mut g = secc_onnx::import_file(model, &opts)
        .with_context(|| format!("importing {}", model.display()))?;
    let mut pm = pass_manager(&a)?;
    pm.run(&mut g, |pass, ir| {
        // a closed stdout only loses the dump; the compilation goes on
        let _ = writeln!(
            std::io::stdout().lock(),
            "// ----- IR after {pass} -----\n{ir}"
        );
    })
    .with_context(|| format!("optimising {}", model.display()))?;
    for (pass, line) in &pm.log.lines {
        if line.contains("limit reached") {
            note!("warning: {pass}: {line}");
        }
    }
    if a.timings {
        for (p, t) in &pm.timings {
            note!("pass {p:<16} {:>9.3} ms", t.as_secs_f64() * 1e3);
        }
    }
    let Some(out) = a.output else { return Ok(()) };
    let opts = secc_codegen::CodegenOptions {
        target,
        compiler_version: format!("secc {}", env!("CARGO_PKG_VERSION")),
        memory_limit,
    };
    let bytes = secc_codegen::compile(&g, &opts)
        .with_context(|| format!("generating code for {}", model.display()))?;
    files::write_atomic(&out, &bytes)?;
    let se = g
        .node_ids()
        .into_iter()
        .filter(|n| matches!(g.node(*n).op, secc_ir::Op::SqueezeExcite(_)))
        .count();
    note!(
        "wrote {} ({} bytes, {se} SE block(s) fused)",
        out.display(),
        bytes.len()
    );
    Ok(())
}

/// The pass list and `--print-after` selection from the flags.
fn pass_manager(a: &CompileArgs) -> Result<PassManager> {
    let passes = if let Some(list) = &a.passes {
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(pipeline::by_name)
            .collect::<Result<Vec<_>, _>>()?
    } else if a.no_fuse {
        pipeline::no_fuse_pipeline()
    } else {
        pipeline::default_pipeline()
    };
    let mut pm = PassManager::new(passes);
    pm.print_after = match a.print_after.as_deref() {
        None => PrintAfter::None,
        Some("all") => PrintAfter::All,
        Some(list) => {
            let names: Vec<String> = list.split(',').map(str::to_string).collect();
            for n in &names {
                if n != "import" && !pipeline::ALL.contains(&n.as_str()) {
                    bail!(
                        "--print-after: unknown pass {n:?} (known: import, {})",
                        pipeline::ALL.join(", ")
                    );
                }
            }
            PrintAfter::Some(names)
        }
    };
    Ok(pm)
}

fn explain_cmd(a: ExplainArgs) -> Result<()> {
    let opts = secc_onnx::ImportOptions {
        fixed_dims: fixed_dims(&a.fix_dim)?,
    };
    let r = explain::report(&a.model, &opts)?;
    explain::print(&a.model, &r, a.json)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn run(a: RunArgs) -> Result<()> {
    let cores = secc_runtime::available_cores();
    let threads = a.threads.unwrap_or(cores);
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    if threads > cores {
        note!(
            "warning: --threads {threads} exceeds the {cores} core(s) this process may use \
             (CPU affinity and cgroup quota); threads will wait for each other to be scheduled"
        );
    }
    let model = secc_runtime::Model::load_with_threads(&a.artifact, threads)
        .with_context(|| format!("loading {}", a.artifact.display()))?;
    let names: Vec<String> = model.input_names().iter().map(|s| s.to_string()).collect();
    let mut given: BTreeMap<String, secc_runtime::Tensor> = BTreeMap::new();
    for spec in &a.inputs {
        let (name, file) = match spec.split_once('=') {
            Some((n, f)) => (n.to_string(), f),
            None if names.len() == 1 => (names[0].clone(), spec.as_str()),
            None => bail!(
                "--input {spec:?}: give NAME=FILE.npy (model inputs: {})",
                names.join(", ")
            ),
        };
        if !names.contains(&name) {
            bail!(
                "--input {spec:?}: the model has no input named {name:?} (inputs: {})",
                names.join(", ")
            );
        }
        let t = npy::read(Path::new(file))
            .with_context(|| format!("reading input {name:?} from {file}"))?;
        if given.insert(name.clone(), t).is_some() {
            bail!("input {name:?} given twice");
        }
    }
    let missing: Vec<&String> = names.iter().filter(|n| !given.contains_key(*n)).collect();
    if !missing.is_empty() {
        bail!(
            "missing input(s): {} (give --input NAME=FILE.npy)",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let inputs: Vec<secc_runtime::Tensor> = names
        .iter()
        .map(|n| given.remove(n).expect("checked above"))
        .collect();
    let outputs = model.run(&inputs).context("running the model")?;
    let files = match &a.output_dir {
        Some(dir) => write_outputs(dir, &model.output_names(), &outputs)?,
        None => vec![],
    };
    if let Some(iters) = a.profile {
        return profile(&model, &inputs, a.warmup, iters, a.json);
    }
    if let Some(iters) = a.bench {
        return bench(&model, &inputs, a.warmup, iters, a.json);
    }
    if a.json {
        let outs: Vec<_> = model
            .output_names()
            .iter()
            .zip(&outputs)
            .enumerate()
            .map(|(i, (n, t))| {
                let mut o = serde_json::json!({"name": n, "shape": t.shape});
                if let Some(f) = files.get(i) {
                    o["file"] = f.display().to_string().into();
                }
                o
            })
            .collect();
        out!("{}", serde_json::json!({ "outputs": outs }));
    } else if a.output_dir.is_none() {
        for (n, t) in model.output_names().iter().zip(&outputs) {
            let head: Vec<String> = match t.dtype {
                secc_runtime::DType::F32 => {
                    t.data.iter().take(6).map(|v| format!("{v:.6}")).collect()
                }
                secc_runtime::DType::I64 => t.ints.iter().take(6).map(|v| v.to_string()).collect(),
            };
            let n_el: usize = t.shape.iter().product();
            out!(
                "{n}: shape {:?} [{}{}]",
                t.shape,
                head.join(", "),
                if n_el > 6 { ", ..." } else { "" }
            );
        }
    }
    Ok(())
}

/// Writes each output to `dir` as `<escaped name>.npy` (see [`files::output_file`]) and
/// returns the files, in output order. Only regular files are replaced.
fn write_outputs(
    dir: &Path,
    names: &[&str],
    outputs: &[secc_runtime::Tensor],
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let paths: Vec<PathBuf> = names.iter().map(|n| files::output_file(dir, n)).collect();
    // check every path before writing any, so a refusal leaves the folder as it was
    for (i, p) in paths.iter().enumerate() {
        if paths[..i].contains(p) {
            bail!("the model has two outputs named {:?}", names[i]);
        }
        files::check_replaceable(p)?;
    }
    for ((name, t), p) in names.iter().zip(outputs).zip(&paths) {
        let bytes = npy::to_bytes(t).with_context(|| format!("encoding output {name:?}"))?;
        files::write_atomic(p, &bytes)?;
        note!("wrote {} (output {name:?})", p.display());
    }
    Ok(paths)
}

fn profile(
    model: &secc_runtime::Model,
    inputs: &[secc_runtime::Tensor],
    warmup: usize,
    iters: usize,
    json: bool,
) -> Result<()> {
    if iters == 0 {
        bail!("--profile needs at least 1 iteration");
    }
    let mut p = model.profile(inputs, warmup, iters)?;
    let total: f64 = p.iter().map(|k| k.3).sum();
    p.sort_by(|x, y| y.3.total_cmp(&x.3));
    if json {
        let ks: Vec<_> = p
            .iter()
            .map(|(n, k, o, us)| serde_json::json!({"name": n, "kind": k, "origin": o, "mean_us": us}))
            .collect();
        out!("{}", serde_json::json!({"total_us": total, "kernels": ks}));
    } else {
        out!("{} kernels, {:.1} us per run in total", p.len(), total);
        for (n, k, o, us) in &p {
            out!(
                "{us:10.1} us {:5.1}%  {n} ({k})  {o}",
                100.0 * us / total.max(1e-9)
            );
        }
    }
    Ok(())
}

fn bench(
    model: &secc_runtime::Model,
    inputs: &[secc_runtime::Tensor],
    warmup: usize,
    iters: usize,
    json: bool,
) -> Result<()> {
    if iters == 0 {
        bail!("--bench needs at least 1 iteration");
    }
    let st = model.bench(inputs, warmup, iters)?;
    let mean = st.latencies_us.iter().sum::<f64>() / st.latencies_us.len() as f64;
    if json {
        let j = serde_json::json!({
            "median_us": st.percentile(50.0), "p90_us": st.percentile(90.0), "min_us": st.percentile(0.0),
            "mean_us": mean, "iterations": iters, "warmup": warmup, "threads": model.threads(),
        });
        out!("{j}");
    } else {
        out!(
            "{iters} runs, {} thread(s): median {:.1} us, p90 {:.1} us, min {:.1} us",
            model.threads(),
            st.percentile(50.0),
            st.percentile(90.0),
            st.percentile(0.0)
        );
    }
    Ok(())
}

fn inspect(a: InspectArgs) -> Result<()> {
    let art = secc_artifact::Artifact::read(&a.artifact)
        .with_context(|| format!("reading {}", a.artifact.display()))?;
    let m = &art.manifest;
    let shape = |b: u32| -> Vec<serde_json::Value> {
        m.buffers[b as usize]
            .shape
            .iter()
            .map(|d| match d {
                secc_artifact::DimDecl::Known(v) => serde_json::json!(v),
                d => serde_json::json!(d.display(&m.symbols)),
            })
            .collect()
    };
    let io = |v: &[secc_artifact::IoDecl]| -> Vec<serde_json::Value> {
        v.iter().map(|i| serde_json::json!({"name": i.name, "dtype": m.buffers[i.buffer as usize].dtype, "shape": shape(i.buffer)})).collect()
    };
    let j = serde_json::json!({
        "format_version": m.format_version,
        "compiler_version": m.compiler_version,
        "model_name": m.model_name,
        "targets": m.targets,
        "symbols": m.symbols,
        "inputs": io(&m.inputs),
        "outputs": io(&m.outputs),
        "kernels": m.kernels.iter().map(|k| serde_json::json!({"name": k.name, "kind": k.kind, "origin": k.origin})).collect::<Vec<_>>(),
        "se_blocks": m.se_blocks,
        // memory plan at batch 1 (every symbolic dimension bound to 1)
        "arena_bytes": m.memory_plan(&vec![1; m.symbols.len()]).arena_floats * 4,
        "arena_bytes_without_reuse": m.memory_plan(&vec![1; m.symbols.len()]).unshared_floats * 4,
        "weights_bytes": m.section("weights").map(|s| s.len).unwrap_or(0),
        "sections": m.sections,
    });
    if a.json {
        out!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        out!(
            "{} (format v{}, {})",
            m.model_name,
            m.format_version,
            m.compiler_version
        );
        for t in &m.targets {
            out!("  target: {} {} cpu={}", t.kind, t.triple, t.cpu);
        }
        for (kind, v) in [("input", &m.inputs), ("output", &m.outputs)] {
            for i in v {
                let s: Vec<String> = m.buffers[i.buffer as usize]
                    .shape
                    .iter()
                    .map(|d| d.display(&m.symbols))
                    .collect();
                out!("  {kind} {:?}: f32[{}]", i.name, s.join(","));
            }
        }
        out!(
            "  {} kernel(s), {} fused SE block(s):",
            m.kernels.len(),
            m.se_blocks
        );
        for k in &m.kernels {
            out!("    {:<28} {:<16} {}", k.name, k.kind, k.origin);
        }
    }
    Ok(())
}
