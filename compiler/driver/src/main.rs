//! `secc`: the command-line driver. Wiring only: import (secc-onnx) -> passes (secc-passes)
//! -> code generation (secc-codegen) -> artifact; `run` and `inspect` use secc-runtime.
#![forbid(unsafe_code)]

mod npy;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
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
}

#[derive(Args, Default)]
struct CompileArgs {
    /// ONNX model to compile
    model: Option<PathBuf>,
    /// Artifact to write
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Code target
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    target: String,
    /// CPU to compile for: `native` (this machine) or a portable LLVM CPU such as `x86-64-v3`
    #[arg(long, default_value = "native")]
    cpu: String,
    /// PTX architecture for --target cuda
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
    /// Fix a symbolic dimension, e.g. `N=1` (repeatable)
    #[arg(long = "fix-dim", value_name = "NAME=VALUE")]
    fix_dim: Vec<String>,
    /// Print per-pass timings to stderr
    #[arg(long)]
    timings: bool,
    /// Overwrite OUTPUT even if it exists and is not a secc artifact
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
    /// Folder to write each output to, as <output name>.npy
    #[arg(long = "output-dir")]
    output_dir: Option<PathBuf>,
    /// Worker threads (default: all cores)
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
        None => compile(cli.compile),
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        for c in e.chain().skip(1) {
            eprintln!("  caused by: {c}");
        }
        std::process::exit(1);
    }
}

fn compile(a: CompileArgs) -> Result<()> {
    let Some(model) = a.model.as_deref() else {
        bail!("no model given: usage `secc MODEL.onnx -o MODEL.bin` (see --help)");
    };
    if a.output.is_none() && a.print_after.is_none() {
        bail!("nothing to do: give `-o OUTPUT` to write an artifact, or `--print-after all` to see the IR");
    }
    let mut opts = secc_onnx::ImportOptions::default();
    for f in &a.fix_dim {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("--fix-dim {f:?}: expected NAME=VALUE"))?;
        let v: u64 = v
            .parse()
            .with_context(|| format!("--fix-dim {f:?}: {v:?} is not a positive integer"))?;
        opts.fixed_dims.insert(k.to_string(), v);
    }
    let mut g = secc_onnx::import_file(model, &opts)
        .with_context(|| format!("importing {}", model.display()))?;
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
    let stdout = std::io::stdout();
    pm.run(&mut g, |pass, ir| {
        let mut o = stdout.lock();
        let _ = writeln!(o, "// ----- IR after {pass} -----\n{ir}");
    })
    .with_context(|| format!("optimising {}", model.display()))?;
    for (pass, line) in &pm.log.lines {
        if line.contains("limit reached") {
            eprintln!("warning: {pass}: {line}");
        }
    }
    if a.timings {
        for (p, t) in &pm.timings {
            eprintln!("pass {p:<16} {:>9.3} ms", t.as_secs_f64() * 1e3);
        }
    }
    let Some(out) = a.output else { return Ok(()) };
    if same_file(model, &out) {
        bail!(
            "refusing to write the artifact over the input model {}",
            model.display()
        );
    }
    if out.is_dir() {
        bail!("output {} is a directory", out.display());
    }
    if out.exists() && !a.force && !is_artifact(&out) {
        bail!(
            "refusing to overwrite {}: it exists and is not a secc artifact (use --force)",
            out.display()
        );
    }
    let target = match a.target.as_str() {
        "cuda" => secc_codegen::Target::Cuda {
            arch: a.arch.clone(),
        },
        _ => secc_codegen::Target::Cpu { cpu: a.cpu.clone() },
    };
    let opts = secc_codegen::CodegenOptions {
        target,
        compiler_version: format!("secc {}", env!("CARGO_PKG_VERSION")),
        memory_limit: match a.max_memory {
            Some(g) if g > 0.0 => Some((g * (1u64 << 30) as f64) as u64),
            Some(g) => bail!("--max-memory must be positive, got {g}"),
            None => physical_memory(),
        },
    };
    let bytes = secc_codegen::compile(&g, &opts)
        .with_context(|| format!("generating code for {}", model.display()))?;
    write_atomic(&out, &bytes)?;
    let se = g
        .node_ids()
        .into_iter()
        .filter(|n| matches!(g.node(*n).op, secc_ir::Op::SqueezeExcite(_)))
        .count();
    eprintln!(
        "wrote {} ({} bytes, {se} SE block(s) fused)",
        out.display(),
        bytes.len()
    );
    Ok(())
}

/// True if the file starts with the artifact magic (an earlier secc output).
fn is_artifact(p: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == secc_artifact::MAGIC
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Writes through a temporary file in the same folder and renames it into place, so a
/// failure never leaves a half-written file where the user expects a good one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Output file name: every character outside `[A-Za-z0-9._-]` becomes `_`.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        format!("output{s}")
    } else {
        s
    }
}

fn run(a: RunArgs) -> Result<()> {
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if threads == 0 {
        bail!("--threads must be at least 1");
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
    if let Some(dir) = &a.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, t) in model.output_names().iter().zip(&outputs) {
            let p = dir.join(format!("{}.npy", sanitize(name)));
            if p.exists() {
                eprintln!("note: replacing {}", p.display());
            }
            npy::write(&p, t).with_context(|| format!("writing {}", p.display()))?;
        }
    }
    if let Some(iters) = a.profile {
        if iters == 0 {
            bail!("--profile needs at least 1 iteration");
        }
        let mut p = model.profile(&inputs, a.warmup, iters)?;
        let total: f64 = p.iter().map(|k| k.3).sum();
        p.sort_by(|x, y| y.3.total_cmp(&x.3));
        if a.json {
            let ks: Vec<_> = p
                .iter()
                .map(|(n, k, o, us)| serde_json::json!({"name": n, "kind": k, "origin": o, "mean_us": us}))
                .collect();
            println!("{}", serde_json::json!({"total_us": total, "kernels": ks}));
        } else {
            println!("{} kernels, {:.1} us per run in total", p.len(), total);
            for (n, k, o, us) in &p {
                println!(
                    "{us:10.1} us {:5.1}%  {n} ({k})  {o}",
                    100.0 * us / total.max(1e-9)
                );
            }
        }
        return Ok(());
    }
    if let Some(iters) = a.bench {
        if iters == 0 {
            bail!("--bench needs at least 1 iteration");
        }
        let st = model.bench(&inputs, a.warmup, iters)?;
        let mean = st.latencies_us.iter().sum::<f64>() / st.latencies_us.len() as f64;
        if a.json {
            let j = serde_json::json!({
                "median_us": st.percentile(50.0), "p90_us": st.percentile(90.0), "min_us": st.percentile(0.0),
                "mean_us": mean, "iterations": iters, "warmup": a.warmup, "threads": model.threads(),
            });
            println!("{j}");
        } else {
            println!(
                "{iters} runs, {} thread(s): median {:.1} us, p90 {:.1} us, min {:.1} us",
                model.threads(),
                st.percentile(50.0),
                st.percentile(90.0),
                st.percentile(0.0)
            );
        }
    } else if a.json {
        let outs: Vec<_> = model
            .output_names()
            .iter()
            .zip(&outputs)
            .map(|(n, t)| serde_json::json!({"name": n, "shape": t.shape}))
            .collect();
        println!("{}", serde_json::json!({ "outputs": outs }));
    } else if a.output_dir.is_none() {
        for (n, t) in model.output_names().iter().zip(&outputs) {
            let head: Vec<String> = match t.dtype {
                secc_runtime::DType::F32 => {
                    t.data.iter().take(6).map(|v| format!("{v:.6}")).collect()
                }
                secc_runtime::DType::I64 => t.ints.iter().take(6).map(|v| v.to_string()).collect(),
            };
            let n_el: usize = t.shape.iter().product();
            println!(
                "{n}: shape {:?} [{}{}]",
                t.shape,
                head.join(", "),
                if n_el > 6 { ", ..." } else { "" }
            );
        }
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
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!(
            "{} (format v{}, {})",
            m.model_name, m.format_version, m.compiler_version
        );
        for t in &m.targets {
            println!("  target: {} {} cpu={}", t.kind, t.triple, t.cpu);
        }
        for (kind, v) in [("input", &m.inputs), ("output", &m.outputs)] {
            for i in v {
                let s: Vec<String> = m.buffers[i.buffer as usize]
                    .shape
                    .iter()
                    .map(|d| d.display(&m.symbols))
                    .collect();
                println!("  {kind} {:?}: f32[{}]", i.name, s.join(","));
            }
        }
        println!(
            "  {} kernel(s), {} fused SE block(s):",
            m.kernels.len(),
            m.se_blocks
        );
        for k in &m.kernels {
            println!("    {:<28} {:<16} {}", k.name, k.kind, k.origin);
        }
    }
    Ok(())
}
