//! `secc`: the command-line driver. Wiring only: import (secc-onnx) -> passes (secc-passes)
//! -> code generation (secc-codegen) -> artifact; `run` and `inspect` use secc-runtime.
#![forbid(unsafe_code)]

mod check;
mod dot;
mod explain;
mod inputs;
mod npy;
mod out;
mod stages;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use out::{note, out};
use secc_driver::{
    check_output, files, fixed_dims, input_shape_dims, input_shapes, memory_limit, same_file,
    target,
};
use secc_passes::{pipeline, PassManager, PrintAfter};
use stages::Stages;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "secc",
    version,
    about = "Compiles ONNX CNNs, fusing every squeeze-and-excitation block into one kernel",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Example:\n  secc model.onnx -o model.bin\n\nExit status: 0 success, 1 error (including `check` over its tolerance), 2 usage error.\nWith --json, results and errors ({\"error\": ..., \"causes\": [...]}) are JSON on stdout."
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
    #[command(after_help = "Example:\n  secc compile model.onnx -o model.bin --timings")]
    Compile(CompileArgs),
    /// Run a compiled artifact on .npy inputs
    #[command(
        after_help = "Example:\n  secc run model.bin --input x=input.npy --output-dir out/\n  secc run model.bin --random-inputs --batch 8 --bench 100 --json\n  secc run det.bin --random-inputs --input-shape x=1,3,736,1280 --bench 20"
    )]
    Run(RunArgs),
    /// Describe a compiled artifact
    #[command(after_help = "Example:\n  secc inspect model.bin --json")]
    Inspect(InspectArgs),
    /// List every SE candidate: fused as which block, or why not
    #[command(after_help = "Example:\n  secc explain model.onnx --json")]
    Explain(ExplainArgs),
    /// Compile in memory and compare the artifact with the reference interpreter
    #[command(
        after_help = "Example:\n  secc check model.onnx --tol 1e-4\n  secc check model.onnx --reference test_data_set_0/"
    )]
    Check(CheckArgs),
    /// Draw the IR as Graphviz DOT (or SVG/PNG/PDF through Graphviz's `dot`)
    #[command(
        after_help = "Example:\n  secc dot model.onnx --after affine-fold -o before.svg\n  secc dot model.onnx --after dce -o after.svg"
    )]
    Dot(DotArgs),
}

#[derive(Args)]
struct DotArgs {
    /// ONNX model
    model: PathBuf,
    /// File to write: `.dot`/`.gv` (text), `.svg`, `.png` or `.pdf` (rendered by Graphviz's
    /// `dot`); default: DOT on stdout
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Draw the graph after this pass of the default pipeline (`import`: before any pass);
    /// default: after all of them
    #[arg(long, value_name = "PASS")]
    after: Option<String>,
    /// Fix a symbolic dimension, e.g. `N=1` (repeatable)
    #[arg(long = "fix-dim", value_name = "NAME=VALUE")]
    fix_dim: Vec<String>,
}

#[derive(Args)]
struct CheckArgs {
    /// ONNX model
    model: PathBuf,
    /// Fix an input's shape, e.g. `x=1,3,224,224`: its symbolic dimensions are fixed
    /// (as with --fix-dim), its known ones must match (repeatable)
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...")]
    input_shape: Vec<String>,
    /// Fix a symbolic dimension, e.g. `N=1` (repeatable)
    #[arg(long = "fix-dim", value_name = "NAME=VALUE")]
    fix_dim: Vec<String>,
    /// Largest accepted relative error |got - want| / (1 + |want|) per element
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Compare with an ONNX test directory (input_*.pb|.npy, output_*.pb|.npy, or
    /// test_data_set_* folders of them) instead of the interpreter on random inputs
    #[arg(long, value_name = "DIR")]
    reference: Option<PathBuf>,
    /// Compile without SE fusion
    #[arg(long = "no-fuse")]
    no_fuse: bool,
    /// Keep every 3x3 convolution direct (see `secc compile --help`)
    #[arg(long = "no-winograd")]
    no_winograd: bool,
    /// CPU to compile for (see `secc compile --help`)
    #[arg(long, default_value = "native")]
    cpu: String,
    /// Worker threads (default: the cores this process may use)
    #[arg(long)]
    threads: Option<usize>,
    /// Print JSON
    #[arg(long)]
    json: bool,
    /// Test hook: change the largest weight before code generation (check must fail)
    #[arg(long = "perturb-weights", hide = true)]
    perturb_weights: bool,
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
    /// Keep every 3x3 stride-1 convolution direct instead of a Winograd form (for
    /// comparisons, or where an infinity in the input must stay within its window)
    #[arg(long = "no-winograd")]
    no_winograd: bool,
    /// Fix a symbolic dimension of the model's inputs to a value of at least 1, e.g. `N=1`
    /// (repeatable; the name must be one of the model's)
    #[arg(long = "fix-dim", value_name = "NAME=VALUE")]
    fix_dim: Vec<String>,
    /// Fix an input's shape, e.g. `x=1,3,224,224`: its symbolic dimensions take these values,
    /// its known ones must match; `?` keeps a dimension symbolic (repeatable)
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...")]
    input_shape: Vec<String>,
    /// Print the time of every stage (import, each pass, code generation, write) to stderr
    #[arg(long)]
    timings: bool,
    /// Print a JSON summary (output, size, SE blocks fused, stage timings) to stdout
    #[arg(long)]
    json: bool,
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
    /// An input as NAME=FILE.npy (repeatable); a single-input model also accepts FILE.npy;
    /// FILE.npz gives each input its array of the same name. float64, float16 and integer
    /// arrays are cast to float32 with a note
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE")]
    inputs: Vec<String>,
    /// Run on deterministic random inputs in [-1, 1) instead of files (for benchmarking)
    #[arg(long = "random-inputs")]
    random_inputs: bool,
    /// With --random-inputs: the batch (each input's symbolic leading dimension); other
    /// symbolic dimensions (image sides) are 224 unless --input-shape gives them
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// With --random-inputs: an input's shape, e.g. `x=1,3,48,320` (repeatable; `?` leaves a
    /// dimension to --batch or 224; known dimensions must match)
    #[arg(
        long = "input-shape",
        value_name = "NAME=D0,D1,...",
        requires = "random_inputs"
    )]
    input_shape: Vec<String>,
    /// Folder to write each output to, as <output name>.npy with every byte of the name
    /// outside [A-Za-z0-9._-] percent-encoded (`a/b` -> `a%2Fb.npy`), so names never collide;
    /// each file written is printed to stderr (and is `file` in --json)
    #[arg(long = "output-dir")]
    output_dir: Option<PathBuf>,
    /// Worker threads (default: the cores this process may use: affinity mask and cgroup quota)
    #[arg(long)]
    threads: Option<usize>,
    /// The CUDA device a CUDA artifact runs on (CPU artifacts ignore it)
    #[arg(long, default_value_t = 0, value_name = "N")]
    device: usize,
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

/// Whether the command asked for JSON (errors are then JSON too).
fn wants_json(cli: &Cli) -> bool {
    match &cli.cmd {
        Some(Cmd::Compile(a)) => a.json,
        Some(Cmd::Run(a)) => a.json,
        Some(Cmd::Inspect(a)) => a.json,
        Some(Cmd::Explain(a)) => a.json,
        Some(Cmd::Check(a)) => a.json,
        Some(Cmd::Dot(_)) => false,
        None => cli.compile.json,
    }
}

fn main() {
    let cli = Cli::parse();
    let json = wants_json(&cli);
    let r = match cli.cmd {
        Some(Cmd::Compile(a)) => compile(a),
        Some(Cmd::Run(a)) => run(a),
        Some(Cmd::Inspect(a)) => inspect(a),
        Some(Cmd::Explain(a)) => explain_cmd(a),
        Some(Cmd::Check(a)) => check_cmd(a),
        Some(Cmd::Dot(a)) => dot_cmd(a),
        None => compile(cli.compile),
    };
    let r = r.and_then(|()| std::io::stdout().flush().map_err(out::stdout_error));
    if let Err(e) = r {
        if e.is::<out::StdoutClosed>() {
            // the reader went away (`| head`): nothing left to say, and not a failure
            std::process::exit(0);
        }
        note!("error: {e}");
        let causes: Vec<String> = e.chain().skip(1).map(|c| c.to_string()).collect();
        for c in &causes {
            note!("  caused by: {c}");
        }
        if json && !e.is::<out::Reported>() {
            let j = serde_json::json!({"error": e.to_string(), "causes": causes});
            let _ = writeln!(std::io::stdout().lock(), "{j}");
        }
        std::process::exit(1);
    }
}

/// Imports `model` and runs the passes of `a`, timing each stage; returns the imported
/// graph (the interpreter's reference) and the optimised one.
fn optimise(
    a: &CompileArgs,
    model: &Path,
    opts: &secc_onnx::ImportOptions,
    target: &secc_codegen::Target,
    st: &mut Stages,
) -> Result<(secc_ir::Graph, secc_ir::Graph)> {
    let imported = st
        .run("import", || secc_onnx::import_file(model, opts))
        .with_context(|| format!("importing {}", model.display()))?;
    let mut g = imported.clone();
    let mut pm = pass_manager(a, target)?;
    pm.run(&mut g, |pass, ir| {
        // a closed stdout only loses the dump; the compilation goes on
        let _ = writeln!(
            std::io::stdout().lock(),
            "// ----- IR after {pass} -----\n{ir}"
        );
    })
    .with_context(|| format!("optimising {}", model.display()))?;
    for (p, t) in &pm.timings {
        st.record(&format!("pass {p}"), *t);
    }
    // `plan`: the kernels the code generator will emit, with their tiles
    let print_plan = a
        .print_after
        .as_deref()
        .is_some_and(|l| l == "all" || l.split(',').any(|n| n == "plan"));
    if print_plan {
        let cpu = matches!(target, secc_codegen::Target::Cpu { .. });
        let forms = codegen_options(target.clone(), None, !a.no_winograd).plan_forms();
        let p = secc_codegen::plan::build_with(&g, cpu, forms)
            .with_context(|| format!("planning {}", model.display()))?;
        let _ = writeln!(
            std::io::stdout().lock(),
            "// ----- kernel plan -----\n{}",
            secc_codegen::plan::describe(&p)
        );
    }
    for (pass, line) in &pm.log.lines {
        if line.contains("limit reached") {
            note!("warning: {pass}: {line}");
        }
    }
    Ok((imported, g))
}

/// Generates the artifact bytes, each code generation stage timed (plan, LLVM IR, O3,
/// object code, link, artifact).
/// The code generation options of the CLI's flags.
fn codegen_options(
    target: secc_codegen::Target,
    memory_limit: Option<u64>,
    winograd: bool,
) -> secc_codegen::CodegenOptions {
    secc_codegen::CodegenOptions {
        target,
        compiler_version: format!("secc {}", env!("CARGO_PKG_VERSION")),
        memory_limit,
        gpu_form: false,
        winograd,
    }
}

fn codegen(
    g: &secc_ir::Graph,
    opts: &secc_codegen::CodegenOptions,
    st: &mut Stages,
) -> Result<Vec<u8>> {
    secc_codegen::compile_timed(g, opts, &mut |name, d| {
        st.record(&format!("codegen: {name}"), d)
    })
    .with_context(|| format!("generating code for {:?}", g.name))
}

fn se_count(g: &secc_ir::Graph) -> usize {
    g.node_ids()
        .into_iter()
        .filter(|n| g.node(*n).op.is_se_block())
        .count()
}

fn compile(a: CompileArgs) -> Result<()> {
    let Some(model) = a.model.as_deref() else {
        bail!("no model given: usage `secc MODEL.onnx -o MODEL.bin` (see --help)");
    };
    if a.output.is_none() && a.print_after.is_none() {
        bail!("nothing to do: give `-o OUTPUT` to write an artifact, or `--print-after all` to see the IR");
    }
    // flags and the output path are checked before the (possibly long) compilation
    let target = target(&a.target, &a.cpu, &a.arch)?;
    let memory_limit = memory_limit(a.max_memory)?;
    if let Some(out) = &a.output {
        check_output(model, out, a.force)?;
    }
    let mut fixed = fixed_dims(&a.fix_dim)?;
    input_shape_dims(model, &input_shapes(&a.input_shape)?, &mut fixed)?;
    let opts = secc_onnx::ImportOptions { fixed_dims: fixed };
    let mut st = Stages::new();
    let (_, g) = optimise(&a, model, &opts, &target, &mut st)?;
    let Some(out) = &a.output else {
        if a.timings {
            st.print();
        }
        return Ok(());
    };
    let opts = codegen_options(target, memory_limit, !a.no_winograd);
    let bytes = codegen(&g, &opts, &mut st)?;
    st.run("write", || files::write_atomic(out, &bytes))?;
    if a.timings {
        st.print();
    }
    let se = se_count(&g);
    if a.json {
        out!(
            "{}",
            serde_json::json!({"model": model.display().to_string(), "output": out.display().to_string(),
                "bytes": bytes.len(), "se_blocks": se, "timings": st.json()})
        );
    } else {
        note!(
            "wrote {} ({} bytes, {se} SE block(s) fused)",
            out.display(),
            bytes.len()
        );
    }
    Ok(())
}

/// The pass list and `--print-after` selection from the flags; the target's lowering
/// passes follow the pipeline unless `--passes` lists the passes exactly.
fn pass_manager(a: &CompileArgs, target: &secc_codegen::Target) -> Result<PassManager> {
    let t = pipeline::TargetOptions {
        block: secc_codegen::vector_block(target),
    };
    let passes = if let Some(list) = &a.passes {
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(|n| pipeline::by_name_for(n, &t))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let mut p = if a.no_fuse {
            pipeline::no_fuse_pipeline()
        } else {
            pipeline::default_pipeline()
        };
        p.extend(pipeline::lowering(&t));
        p
    };
    let mut pm = PassManager::new(passes);
    pm.print_after = match a.print_after.as_deref() {
        None => PrintAfter::None,
        Some("all") => PrintAfter::All,
        Some(list) => {
            let names: Vec<String> = list.split(',').map(str::to_string).collect();
            for n in &names {
                let known = pipeline::ALL.iter().chain(pipeline::LOWERING);
                if n != "import" && n != "plan" && !known.clone().any(|k| k == n) {
                    let names: Vec<&str> = known.copied().collect();
                    bail!(
                        "--print-after: unknown pass {n:?} (known: import, {}, plan)",
                        names.join(", ")
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

fn check_cmd(a: CheckArgs) -> Result<()> {
    let mut dims = fixed_dims(&a.fix_dim)?;
    input_shape_dims(&a.model, &input_shapes(&a.input_shape)?, &mut dims)?;
    let ca = CompileArgs {
        model: Some(a.model.clone()),
        cpu: a.cpu.clone(),
        target: "cpu".into(),
        no_fuse: a.no_fuse,
        no_winograd: a.no_winograd,
        ..Default::default()
    };
    let target = target(&ca.target, &ca.cpu, &ca.arch)?;
    let mut st = Stages::new();
    let opts = secc_onnx::ImportOptions { fixed_dims: dims };
    let (reference, mut g) = optimise(&ca, &a.model, &opts, &target, &mut st)?;
    if a.perturb_weights {
        check::perturb_weights(&mut g);
    }
    let opts = codegen_options(target, memory_limit(ca.max_memory)?, !ca.no_winograd);
    let bytes = codegen(&g, &opts, &mut st)?;
    let threads = a
        .threads
        .unwrap_or_else(secc_runtime::available_cores)
        .max(1);
    let mut session = secc_runtime::Model::from_bytes(bytes)
        .and_then(|m| m.session(threads))
        .context("loading the artifact")?;
    let cases = match &a.reference {
        Some(dir) => check::reference_dirs(dir)?
            .iter()
            .map(|d| check::reference_case(&mut session, d))
            .collect::<Result<Vec<_>>>()?,
        None => {
            let batches: &[Option<u64>] = if reference.sym_names.is_empty() {
                &[None]
            } else {
                &[Some(1), Some(3)]
            };
            batches
                .iter()
                .map(|b| check::random_case(&mut session, &reference, *b))
                .collect::<Result<Vec<_>>>()?
        }
    };
    check_report(&a, &cases, se_count(&g))
}

/// Prints the comparisons; an error naming every output over the tolerance.
fn check_report(a: &CheckArgs, cases: &[check::Case], se: usize) -> Result<()> {
    let mut bad = vec![];
    let mut js = vec![];
    for c in cases {
        if !a.json {
            out!("{}:", c.label);
        }
        let mut outs = vec![];
        for o in &c.outputs {
            let ok = o.max_rel <= a.tol;
            if !ok {
                bad.push(format!(
                    "{:?} (max rel error {:.3e}, {})",
                    o.name, o.max_rel, c.label
                ));
            }
            if a.json {
                outs.push(serde_json::json!({"name": o.name, "shape": o.shape, "max_abs": o.max_abs, "max_rel": o.max_rel, "ok": ok}));
            } else {
                out!(
                    "  {:<24} {:?}: max abs {:.3e}, max rel {:.3e}  {}",
                    format!("{:?}", o.name),
                    o.shape,
                    o.max_abs,
                    o.max_rel,
                    if ok { "ok" } else { "FAIL" }
                );
            }
        }
        js.push(serde_json::json!({"inputs": c.label, "outputs": outs}));
    }
    if a.json {
        out!(
            "{}",
            serde_json::json!({"model": a.model.display().to_string(), "tolerance": a.tol,
                "se_blocks": se, "ok": bad.is_empty(), "cases": js})
        );
    } else if bad.is_empty() {
        out!(
            "ok: every output within {:e} ({se} SE block(s) fused)",
            a.tol
        );
    }
    if !bad.is_empty() {
        let msg = format!(
            "output(s) over the tolerance {:e}: {}",
            a.tol,
            bad.join(", ")
        );
        // with --json the report above already says so: no second JSON document
        return Err(anyhow::Error::new(out::Reported(msg)));
    }
    Ok(())
}

/// Runs the passes `names` on `g` (lowering passes for this machine's CPU).
fn run_passes(g: &mut secc_ir::Graph, names: &[&str]) -> Result<()> {
    let t = pipeline::TargetOptions {
        block: secc_codegen::vector_block(&secc_codegen::Target::Cpu {
            cpu: "native".into(),
        }),
    };
    let ps = names
        .iter()
        .map(|n| pipeline::by_name_for(n, &t))
        .collect::<Result<Vec<_>, _>>()?;
    PassManager::new(ps).run(g, |_, _| {})?;
    Ok(())
}

/// The SE blocks `se-fuse` would fuse in `g` (a graph before that pass), as (pool, multiply).
fn unfused_blocks(
    g: &secc_ir::Graph,
    rest: &[&str],
) -> Result<Vec<(secc_ir::NodeId, secc_ir::NodeId)>> {
    let mut h = g.clone();
    run_passes(&mut h, rest)?;
    let (_, r) = secc_passes::SeFuse::default().run_report(&mut h, &mut Default::default())?;
    Ok(r.candidates
        .iter()
        .filter(|c| matches!(c.outcome, secc_passes::se_fuse::Outcome::Fused { .. }))
        .filter_map(|c| Some((c.node_id, c.mul_id?)))
        .filter(|(p, m)| g.contains(*p) && g.contains(*m))
        .collect())
}

fn dot_cmd(a: DotArgs) -> Result<()> {
    let all: Vec<&str> = pipeline::ALL
        .iter()
        .chain(pipeline::LOWERING)
        .copied()
        .collect();
    let upto = match a.after.as_deref() {
        None => all.len(),
        Some("import") => 0,
        Some(p) => {
            1 + all.iter().position(|n| *n == p).with_context(|| {
                format!(
                    "--after: unknown pass {p:?} (known: import, {})",
                    all.join(", ")
                )
            })?
        }
    };
    if let Some(o) = &a.output {
        if same_file(&a.model, o) {
            bail!(
                "refusing to write the picture over the input model {}",
                o.display()
            );
        }
        files::check_replaceable(o)?;
    }
    let opts = secc_onnx::ImportOptions {
        fixed_dims: fixed_dims(&a.fix_dim)?,
    };
    let mut g = secc_onnx::import_file(&a.model, &opts)
        .with_context(|| format!("importing {}", a.model.display()))?;
    run_passes(&mut g, &all[..upto])
        .with_context(|| format!("optimising {}", a.model.display()))?;
    let se_at = all
        .iter()
        .position(|n| *n == "se-fuse")
        .unwrap_or(all.len());
    let blocks = if upto <= se_at {
        unfused_blocks(&g, &all[upto..se_at])?
    } else {
        vec![]
    };
    let text = dot::write(&g, &blocks);
    let Some(out) = &a.output else {
        out!("{text}");
        return Ok(());
    };
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("");
    let bytes = match ext {
        "svg" | "png" | "pdf" => render(&text, ext)?,
        _ => text.into_bytes(),
    };
    files::write_atomic(out, &bytes)?;
    note!("wrote {}", out.display());
    Ok(())
}

/// Renders DOT with Graphviz's `dot -T<format>`.
fn render(text: &str, format: &str) -> Result<Vec<u8>> {
    use std::process::{Command, Stdio};
    let mut child = match Command::new("dot")
        .arg(format!("-T{format}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "rendering .{format} needs Graphviz's `dot`, which is not installed (Debian: \
             apt-get install graphviz); write `-o graph.dot` to get the DOT text instead"
        ),
        Err(e) => return Err(e).context("starting Graphviz's dot"),
    };
    let mut stdin = child.stdin.take().context("dot stdin")?;
    let t = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(t.as_bytes()));
    let o = child.wait_with_output().context("running Graphviz's dot")?;
    let _ = writer.join();
    if !o.status.success() {
        bail!(
            "Graphviz's dot failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(o.stdout)
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
    let opts = secc_runtime::LoadOptions { device: a.device };
    let model = secc_runtime::Model::load_with(&a.artifact, &opts)
        .with_context(|| format!("loading {}", a.artifact.display()))?;
    if let Some(d) = model.device() {
        note!("running on {d}");
    }
    let mut session = model.session(threads).context("starting a session")?;
    let names: Vec<String> = model.input_names().iter().map(|s| s.to_string()).collect();
    let inputs = if a.random_inputs {
        if !a.inputs.is_empty() {
            bail!("--random-inputs and --input exclude each other");
        }
        let side = secc_codegen::plan::TYPICAL_EXTENT;
        let given = input_shapes(&a.input_shape)?;
        inputs::random_inputs(model.manifest(), a.batch, side, &given)?
    } else {
        inputs::load(&a.inputs, &names)?
    };
    let outputs = session.run(&inputs).context("running the model")?.to_vec();
    let files = match &a.output_dir {
        Some(dir) => write_outputs(dir, &model.output_names(), &outputs)?,
        None => vec![],
    };
    if let Some(iters) = a.profile {
        return profile(&mut session, &inputs, a.warmup, iters, a.json);
    }
    if let Some(iters) = a.bench {
        return bench(&mut session, &a.artifact, &inputs, a.warmup, iters, a.json);
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
        out!(
            "{}",
            serde_json::json!({ "model": a.artifact.display().to_string(), "outputs": outs })
        );
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
    session: &mut secc_runtime::Session,
    inputs: &[secc_runtime::Tensor],
    warmup: usize,
    iters: usize,
    json: bool,
) -> Result<()> {
    if iters == 0 {
        bail!("--profile needs at least 1 iteration");
    }
    let mut p = session.profile(inputs, warmup, iters)?;
    let total: f64 = p.iter().map(|k| k.mean_us).sum();
    p.sort_by(|x, y| y.mean_us.total_cmp(&x.mean_us));
    if json {
        let ks: Vec<_> = p
            .iter()
            .map(|k| serde_json::json!({"name": k.name, "kind": k.kind, "origin": k.origin, "mean_us": k.mean_us}))
            .collect();
        out!("{}", serde_json::json!({"total_us": total, "kernels": ks}));
    } else {
        out!("{} kernels, {:.1} us per run in total", p.len(), total);
        for k in &p {
            out!(
                "{:10.1} us {:5.1}%  {} ({})  {}",
                k.mean_us,
                100.0 * k.mean_us / total.max(1e-9),
                k.name,
                k.kind,
                k.origin
            );
        }
    }
    Ok(())
}

fn bench(
    session: &mut secc_runtime::Session,
    path: &Path,
    inputs: &[secc_runtime::Tensor],
    warmup: usize,
    iters: usize,
    json: bool,
) -> Result<()> {
    if iters == 0 {
        bail!("--bench needs at least 1 iteration");
    }
    let st = session.bench(inputs, warmup, iters)?;
    let mean = st.latencies_us.iter().sum::<f64>() / st.latencies_us.len() as f64;
    let batch = inputs.first().and_then(|t| t.shape.first()).copied();
    let p = |q| st.percentile(q);
    let j = serde_json::json!({
        "model": path.display().to_string(), "batch": batch,
        "mean_us": mean, "median_us": p(50.0), "p90_us": p(90.0), "p99_us": p(99.0),
        "min_us": p(0.0), "max_us": p(100.0),
        "iterations": iters, "warmup": warmup, "threads": session.threads(),
    });
    if json {
        out!("{j}");
    } else {
        out!(
            "{}: batch {}, {iters} runs after {warmup} warm-up, {} thread(s)",
            path.display(),
            batch.map_or("-".into(), |b| b.to_string()),
            session.threads()
        );
        out!(
            "  mean {mean:.1} us, median {:.1} us, p90 {:.1} us, p99 {:.1} us, min {:.1} us, max {:.1} us",
            p(50.0),
            p(90.0),
            p(99.0),
            p(0.0),
            p(100.0)
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
    // the memory plan at batch 1, image sides (symbols that are no input's batch) at 224,
    // as the compiler sizes models
    let at = m.sizing_binding(1, secc_codegen::plan::TYPICAL_EXTENT);
    let plan = m.memory_plan(&at);
    let sized_at: Vec<String> = m
        .symbols
        .iter()
        .zip(&at)
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let rel = |r: secc_artifact::Relation| match r {
        secc_artifact::Relation::Ge => ">=",
        secc_artifact::Relation::Eq => "==",
    };
    let constraints: Vec<serde_json::Value> = m
        .constraints
        .iter()
        .map(|c| {
            serde_json::json!({
                "lhs": c.lhs.display(&m.symbols),
                "rel": rel(c.rel),
                "rhs": c.rhs.display(&m.symbols),
                "origin": c.origin,
            })
        })
        .collect();
    let io = |v: &[secc_artifact::IoDecl]| -> Vec<serde_json::Value> {
        v.iter().map(|i| serde_json::json!({"name": i.name, "dtype": m.buffers[i.buffer as usize].dtype, "shape": shape(i.buffer)})).collect()
    };
    let j = serde_json::json!({
        "format_version": m.format_version,
        "compiler_version": m.compiler_version,
        "model_name": m.model_name,
        "targets": m.targets,
        "symbols": m.symbols,
        "constraints": constraints,
        "inputs": io(&m.inputs),
        "outputs": io(&m.outputs),
        "kernels": m.kernels.iter().map(|k| serde_json::json!({"name": k.name, "kind": k.kind, "origin": k.origin, "launch": k.launch})).collect::<Vec<_>>(),
        "se_blocks": m.se_blocks,
        "sized_at": sized_at,
        "arena_bytes": plan.arena_floats.saturating_mul(4),
        "arena_bytes_without_reuse": plan.unshared_floats.saturating_mul(4),
        "weights_bytes": m.section("weights").map(|s| s.len).unwrap_or(0),
        "sections": m.sections,
    });
    if a.json {
        out!("{j}");
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
                out!(
                    "  {kind} {:?}: {}[{}]",
                    i.name,
                    m.buffers[i.buffer as usize].dtype,
                    s.join(",")
                );
            }
        }
        out!(
            "  symbols: {}",
            if m.symbols.is_empty() {
                "none".into()
            } else {
                m.symbols.join(", ")
            }
        );
        for c in &constraints {
            out!(
                "  require {} {} {}  ({})",
                c["lhs"].as_str().unwrap_or_default(),
                c["rel"].as_str().unwrap_or_default(),
                c["rhs"].as_str().unwrap_or_default(),
                c["origin"].as_str().unwrap_or_default()
            );
        }
        let sized = if sized_at.is_empty() {
            String::new()
        } else {
            format!(" at {}", sized_at.join(", "))
        };
        out!(
            "  memory{sized}: arena {} bytes ({} without reuse), weights {} bytes",
            j["arena_bytes"],
            j["arena_bytes_without_reuse"],
            j["weights_bytes"]
        );
        for sec in &m.sections {
            out!(
                "  section {:<10} offset {:>10} len {:>10} crc32 {:08x}",
                sec.kind,
                sec.offset,
                sec.len,
                sec.crc32
            );
        }
        out!(
            "  {} kernel(s), {} fused SE block(s):",
            m.kernels.len(),
            m.se_blocks
        );
        for k in &m.kernels {
            let launch = k.launch.as_ref().map_or(String::new(), |l| {
                let grid: Vec<String> = l.grid.iter().map(|d| d.display(&m.symbols)).collect();
                format!(
                    "  grid [{}] x {:?}, shared {} B",
                    grid.join(", "),
                    l.block,
                    l.shared_bytes
                )
            });
            out!("    {:<28} {:<16} {}{launch}", k.name, k.kind, k.origin);
        }
    }
    Ok(())
}
