//! Target machines, optimisation, emission, and packing into an artifact.
use crate::kb::{Flavor, Kb};
use crate::{kernels, launch, plan, CodegenError};
use inkwell::context::Context;
use inkwell::module::Module;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target as LlvmTarget, TargetMachine,
    TargetTriple,
};
use inkwell::OptimizationLevel;
use secc_artifact::{KernelDecl, Manifest, TargetDecl};
use secc_ir::Graph;

/// What to generate code for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The host architecture; `cpu` is `native` or an LLVM CPU name such as `x86-64-v3`.
    Cpu {
        /// CPU name
        cpu: String,
    },
    /// NVIDIA GPUs: PTX for `arch` (e.g. `sm_80`).
    Cuda {
        /// PTX architecture
        arch: String,
    },
}

/// Code generation options.
#[derive(Debug, Clone)]
pub struct CodegenOptions {
    /// the target
    pub target: Target,
    /// written into the artifact
    pub compiler_version: String,
    /// refuse models whose weights plus intermediate tensors at batch 1 exceed this many
    /// bytes (`None`: no limit)
    pub memory_limit: Option<u64>,
    /// plan SE blocks in the GPU's split form (pool, FC1, FC2, scale) on a CPU target too,
    /// so that tests check that form against the interpreter where there is no GPU; CUDA
    /// targets always use it
    pub gpu_form: bool,
    /// let 3x3 stride-1 convolutions run in a Winograd form where it costs less
    /// (`crate::winograd`); `false` keeps every convolution direct, whose results on
    /// non-finite inputs stay within each output's window
    pub winograd: bool,
}

impl CodegenOptions {
    /// The kernel forms these options let a plan choose.
    pub fn plan_forms(&self) -> plan::Forms {
        plan::Forms {
            gpu: !matches!(self.target, Target::Cpu { .. }) || self.gpu_form,
            winograd: self.winograd,
        }
    }
}

/// LLVM 19's x86 CPU names (`llc -march=x86-64 -mcpu=help`) that can run 64-bit code: an
/// unknown name, or a 32-bit-only one such as `pentium4`, makes LLVM print a warning per
/// function and then abort the process ("64-bit code requested on a subtarget that doesn't
/// support it"), so names are checked here first.
#[rustfmt::skip]
pub const X86_CPUS: &[&str] = &[
    "alderlake", "amdfam10", "arrowlake", "arrowlake-s", "arrowlake_s", "athlon-fx", "athlon64",
    "athlon64-sse3", "atom", "atom_sse4_2", "atom_sse4_2_movbe", "barcelona", "bdver1", "bdver2",
    "bdver3", "bdver4", "bonnell", "broadwell", "btver1", "btver2", "cannonlake", "cascadelake",
    "clearwaterforest", "cooperlake", "core-avx-i", "core-avx2", "core2", "core_2_duo_sse4_1",
    "core_2_duo_ssse3", "core_2nd_gen_avx", "core_3rd_gen_avx", "core_4th_gen_avx",
    "core_4th_gen_avx_tsx", "core_5th_gen_avx", "core_5th_gen_avx_tsx", "core_aes_pclmulqdq",
    "core_i7_sse4_2", "corei7", "corei7-avx", "emeraldrapids", "generic", "goldmont",
    "goldmont-plus", "goldmont_plus", "gracemont", "grandridge", "graniterapids",
    "graniterapids-d", "graniterapids_d", "haswell", "icelake-client", "icelake-server",
    "icelake_client", "icelake_server", "ivybridge", "k8", "k8-sse3", "knl", "knm", "lunarlake",
    "meteorlake", "mic_avx512", "nehalem", "nocona", "opteron", "opteron-sse3", "pantherlake",
    "penryn", "raptorlake", "rocketlake", "sandybridge", "sapphirerapids", "sierraforest",
    "silvermont", "skx", "skylake", "skylake-avx512", "skylake_avx512", "slm", "tigerlake",
    "tremont", "westmere", "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4", "znver1", "znver2",
    "znver3", "znver4", "znver5",
];

/// PTX architectures that LLVM 19's NVPTX back end emits and ptxas 11.8 (CUDA 11.8) accepts:
/// sm_20..sm_32 are gone from ptxas, and sm_90a needs PTX 8.0, which ptxas 11.8 rejects.
#[rustfmt::skip]
pub const PTX_ARCHS: &[&str] = &[
    "sm_35", "sm_37", "sm_50", "sm_52", "sm_53", "sm_60", "sm_61", "sm_62", "sm_70", "sm_72",
    "sm_75", "sm_80", "sm_86", "sm_87", "sm_89", "sm_90",
];

/// Checks the CPU or PTX architecture name before LLVM sees it.
pub fn check_target(target: &Target) -> Result<(), CodegenError> {
    let (what, name, known): (&str, &str, &[&str]) = match target {
        // only the x86 list is known here; other hosts leave the name to LLVM
        Target::Cpu { cpu } if cpu == "native" || !cfg!(target_arch = "x86_64") => return Ok(()),
        Target::Cpu { cpu } => ("an x86-64 CPU that LLVM 19 knows", cpu, X86_CPUS),
        Target::Cuda { arch } => (
            "a PTX architecture that both LLVM 19 and ptxas 11.8 support",
            arch,
            PTX_ARCHS,
        ),
    };
    if known.contains(&name) {
        return Ok(());
    }
    let native = if matches!(target, Target::Cpu { .. }) {
        "native (this machine), "
    } else {
        ""
    };
    Err(CodegenError::BadTarget(format!(
        "{name:?} is not {what} (known: {native}{})",
        known.join(", ")
    )))
}

/// LLVM 19 CPU names with AVX-512F.
#[rustfmt::skip]
const AVX512_CPUS: &[&str] = &[
    "cannonlake", "cascadelake", "cooperlake", "emeraldrapids", "graniterapids",
    "graniterapids-d", "graniterapids_d", "icelake-client", "icelake-server", "icelake_client",
    "icelake_server", "knl", "knm", "mic_avx512", "rocketlake", "sapphirerapids", "skx",
    "skylake-avx512", "skylake_avx512", "tigerlake", "x86-64-v4", "znver4", "znver5",
];

/// The channel block (vector width in floats) of the blocked layout for a target: 16 where
/// it has AVX-512, 8 otherwise (AVX2; narrower CPUs split the vectors, still correctly);
/// `None` for the GPU, which keeps plain layouts.
pub fn vector_block(target: &Target) -> Option<u32> {
    match target {
        Target::Cuda { .. } => None,
        Target::Cpu { cpu } if cpu == "native" => {
            let f = TargetMachine::get_host_cpu_features().to_string();
            Some(if f.split(',').any(|x| x == "+avx512f") {
                16
            } else {
                8
            })
        }
        Target::Cpu { cpu } => Some(if AVX512_CPUS.contains(&cpu.as_str()) {
            16
        } else {
            8
        }),
    }
}

/// x86-64 micro-architecture levels and the features each requires (psABI levels).
fn level_features(cpu: &str) -> Option<Vec<&'static str>> {
    let v1 = ["sse", "sse2"];
    let v2 = ["sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "cx16"];
    let v3 = [
        "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "lzcnt", "movbe",
    ];
    let v4 = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"];
    let n = match cpu {
        "x86-64" => 1,
        "x86-64-v2" => 2,
        "x86-64-v3" => 3,
        "x86-64-v4" => 4,
        _ => return None,
    };
    let mut f: Vec<&str> = v1.to_vec();
    if n >= 2 {
        f.extend(v2);
    }
    if n >= 3 {
        f.extend(v3);
    }
    if n >= 4 {
        f.extend(v4);
    }
    Some(f)
}

fn machine(
    triple: &TargetTriple,
    cpu: &str,
    features: &str,
) -> Result<TargetMachine, CodegenError> {
    let t = LlvmTarget::from_triple(triple).map_err(|e| CodegenError::Llvm(e.to_string()))?;
    t.create_target_machine(
        triple,
        cpu,
        features,
        OptimizationLevel::Aggressive,
        RelocMode::PIC,
        CodeModel::Default,
    )
    .ok_or_else(|| {
        CodegenError::Llvm(format!(
            "cannot create a target machine for {} / {cpu}",
            triple.as_str().to_string_lossy()
        ))
    })
}

fn optimise(m: &Module, tm: &TargetMachine) -> Result<(), CodegenError> {
    m.verify()
        .map_err(|e| CodegenError::Llvm(format!("module does not verify: {}", e.to_string())))?;
    let o = PassBuilderOptions::create();
    o.set_loop_vectorization(true);
    o.set_loop_slp_vectorization(true);
    m.run_passes("default<O3>", tm, o)
        .map_err(|e| CodegenError::Llvm(e.to_string()))
}

/// Generated code for a plan.
pub struct Generated {
    /// the target record for the manifest
    pub target: TargetDecl,
    /// the section kind and bytes
    pub section: (&'static str, Vec<u8>),
    /// per plan step: whether the kernel waits at a barrier inside
    pub barriers: Vec<bool>,
}

/// Computes the layout digest the CPU code embeds, from the target record and the
/// kernels' barrier flags (the last parts of the manifest known only during generation).
pub type DigestFn<'a> = dyn FnMut(&TargetDecl, &[bool]) -> Result<u32, CodegenError> + 'a;

/// Reports a finished stage of code generation and its time.
pub type StageFn<'a> = dyn FnMut(&str, std::time::Duration) + 'a;

/// Emits every kernel of the plan into one module for the target and returns its code.
pub fn generate(
    g: &Graph,
    p: &plan::Plan,
    target: &Target,
    digest: &mut DigestFn<'_>,
    stage: &mut StageFn<'_>,
) -> Result<Generated, CodegenError> {
    check_target(target)?;
    let mut t = std::time::Instant::now();
    let mut lap = |name: &str, stage: &mut StageFn<'_>| {
        stage(name, t.elapsed());
        t = std::time::Instant::now();
    };
    let ctx = Context::create();
    let m = ctx.create_module(&g.name);
    let flavor = match target {
        Target::Cpu { .. } => Flavor::Cpu,
        Target::Cuda { .. } => Flavor::Ptx,
    };
    let mut barriers = Vec::with_capacity(p.steps.len());
    for s in &p.steps {
        let mut kb = Kb::new(&ctx, &m, flavor, &s.name, s.args.len(), g.sym_names.len())?;
        kernels::emit(&mut kb, &s.kind).map_err(|e| match e {
            CodegenError::Unsupported { msg, .. } => CodegenError::Unsupported {
                node: format!("{} ({})", s.origin, s.kind.name()),
                msg,
            },
            e => e,
        })?;
        barriers.push(kb.finish()?);
    }
    lap("LLVM IR of the kernels", stage);
    match target {
        Target::Cpu { cpu } => {
            LlvmTarget::initialize_native(&InitializationConfig::default())
                .map_err(CodegenError::Llvm)?;
            let triple = TargetMachine::get_default_triple();
            let (cpu_name, feat_str, features) = if cpu == "native" {
                let f = TargetMachine::get_host_cpu_features().to_string();
                let req: Vec<String> = f
                    .split(',')
                    .filter_map(|x| x.strip_prefix('+'))
                    .map(str::to_string)
                    .collect();
                (TargetMachine::get_host_cpu_name().to_string(), f, req)
            } else {
                let req = level_features(cpu)
                    .map(|v| v.iter().map(|s| s.to_string()).collect())
                    .unwrap_or_default();
                (cpu.clone(), String::new(), req)
            };
            let tm = machine(&triple, &cpu_name, &feat_str)?;
            let decl = TargetDecl {
                kind: "cpu".into(),
                triple: triple.as_str().to_string_lossy().into_owned(),
                cpu: cpu_name,
                features,
            };
            embed_digest(&ctx, &m, digest(&decl, &barriers)?);
            m.set_triple(&triple);
            m.set_data_layout(&tm.get_target_data().get_data_layout());
            optimise(&m, &tm)?;
            lap("LLVM O3", stage);
            let obj = tm
                .write_to_memory_buffer(&m, FileType::Object)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
            lap("LLVM object code", stage);
            let so = link_shared(obj.as_slice())?;
            lap("link (cc -shared)", stage);
            Ok(Generated {
                target: decl,
                section: ("cpu_code", so),
                barriers,
            })
        }
        Target::Cuda { arch } => {
            LlvmTarget::initialize_nvptx(&InitializationConfig::default());
            let triple = TargetTriple::create("nvptx64-nvidia-cuda");
            // PTX 6.0 at least: the warp shuffles (`shfl.sync`) need it, and LLVM's default
            // for sm_35..sm_62 is older (it then aborts on the shuffle intrinsic); newer
            // architectures already default to a later PTX
            let tm = machine(&triple, arch, "+ptx60")?;
            let decl = TargetDecl {
                kind: "cuda".into(),
                triple: "nvptx64-nvidia-cuda".into(),
                cpu: arch.clone(),
                features: vec![],
            };
            embed_digest(&ctx, &m, digest(&decl, &barriers)?);
            m.set_triple(&triple);
            m.set_data_layout(&tm.get_target_data().get_data_layout());
            optimise(&m, &tm)?;
            lap("LLVM O3", stage);
            let ptx = tm
                .write_to_memory_buffer(&m, FileType::Assembly)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
            lap("LLVM PTX", stage);
            Ok(Generated {
                target: decl,
                section: ("ptx", ptx.as_slice().to_vec()),
                barriers,
            })
        }
    }
}

/// Adds the constant `u32` [`secc_artifact::DIGEST_SYMBOL`] = `digest` to the module: an
/// exported symbol of the CPU code, a `.global .u32` initialised in the PTX text.
fn embed_digest<'ctx>(ctx: &'ctx Context, m: &Module<'ctx>, digest: u32) {
    let d = ctx.i32_type().const_int(u64::from(digest), false);
    let global = m.add_global(ctx.i32_type(), None, secc_artifact::DIGEST_SYMBOL);
    global.set_initializer(&d);
    global.set_constant(true);
}

/// Links an object into a shared object with the system C compiler driver.
fn link_shared(obj: &[u8]) -> Result<Vec<u8>, CodegenError> {
    let dir = tempfile::tempdir().map_err(|e| CodegenError::Link(e.to_string()))?;
    let o = dir.path().join("kernels.o");
    let so = dir.path().join("kernels.so");
    std::fs::write(&o, obj).map_err(|e| CodegenError::Link(e.to_string()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = std::process::Command::new(&cc)
        .args(["-shared", "-nostartfiles", "-o"])
        .arg(&so)
        .arg(&o)
        .arg("-lm")
        .output()
        .map_err(|e| {
            CodegenError::Link(format!(
                "cannot run `{cc}` (install a C toolchain, e.g. build-essential): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(CodegenError::Link(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    std::fs::read(&so).map_err(|e| CodegenError::Link(e.to_string()))
}

/// Sizes every tensor at batch 1 (and symbolic image sides at [`plan::TYPICAL_EXTENT`])
/// without overflow and, with a limit, refuses a model whose weights plus memory plan exceed
/// it, naming the node with the largest tensor.
fn check_memory(m: &Manifest, p: &plan::Plan, limit: Option<u64>) -> Result<(), CodegenError> {
    // symbolic image sides at the typical extent: rules such as a valid convolution's
    // `H - 2` need sides of a few pixels at least
    let binding = m.sizing_binding(1, plan::TYPICAL_EXTENT);
    let at = if binding.iter().any(|v| *v != 1) {
        format!("batch 1 and image sides of {}", plan::TYPICAL_EXTENT)
    } else {
        "batch 1".to_string()
    };
    let bytes = |b: &secc_artifact::BufferDecl| -> Option<u64> {
        b.shape
            .iter()
            .try_fold(4u64, |a, d| a.checked_mul(d.eval(&binding)?))
    };
    let writer = |i: usize| -> String {
        m.kernels
            .iter()
            .find(|k| k.writes.contains(&(i as u32)))
            .map(|k| format!("node {:?} ({})", k.origin, k.kind))
            .unwrap_or_else(|| format!("buffer {i}"))
    };
    let mut largest = (0u64, 0usize);
    let mut io = 0u64;
    for (i, b) in m.buffers.iter().enumerate() {
        let n = bytes(b).ok_or_else(|| CodegenError::TooLarge {
            node: writer(i),
            msg: "a tensor's size overflows 64 bits".into(),
        })?;
        if matches!(
            b.kind,
            secc_artifact::BufferKind::Input { .. } | secc_artifact::BufferKind::Output { .. }
        ) {
            io = io.saturating_add(n);
        }
        if matches!(
            b.kind,
            secc_artifact::BufferKind::Temp | secc_artifact::BufferKind::Output { .. }
        ) && n > largest.0
        {
            largest = (n, i);
        }
    }
    let Some(limit) = limit else {
        return Ok(());
    };
    let arena = m.memory_plan(&binding).arena_floats as u64 * 4;
    let need = arena
        .saturating_add(io)
        .saturating_add(p.weights.len() as u64);
    if need > limit {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(CodegenError::TooLarge {
            node: writer(largest.1),
            msg: format!(
                "the model needs {:.2} GiB at {at} ({:.2} GiB of weights, {:.2} GiB of inputs and outputs, {:.2} GiB of intermediate tensors; this node's output alone is {:.2} GiB), more than the {:.2} GiB limit",
                gib(need),
                gib(p.weights.len() as u64),
                gib(io),
                gib(arena),
                gib(largest.0),
                gib(limit)
            ),
        });
    }
    Ok(())
}

/// Compiles a graph (after passes) into artifact bytes.
pub fn compile(g: &Graph, opts: &CodegenOptions) -> Result<Vec<u8>, CodegenError> {
    compile_timed(g, opts, &mut |_, _| {})
}

/// [`compile`], reporting each stage (plan, LLVM IR, O3, object code or PTX, link, packing)
/// with its time as it finishes.
pub fn compile_timed(
    g: &Graph,
    opts: &CodegenOptions,
    stage: &mut StageFn<'_>,
) -> Result<Vec<u8>, CodegenError> {
    check_target(&opts.target)?;
    let t0 = std::time::Instant::now();
    let cpu = matches!(opts.target, Target::Cpu { .. });
    let p = plan::build_with(g, cpu, opts.plan_forms())?;
    stage("plan (buffers, packed weights)", t0.elapsed());
    let cuda = matches!(opts.target, Target::Cuda { .. });
    let nsyms = g.sym_names.len();
    let manifest_for = |target: TargetDecl, barriers: &[bool]| -> Result<Manifest, CodegenError> {
        let mut kernels = Vec::with_capacity(p.steps.len());
        for (s, &barrier) in p.steps.iter().zip(barriers) {
            kernels.push(KernelDecl {
                name: s.name.clone(),
                kind: s.kind.name().into(),
                origin: s.origin.clone(),
                args: s.args.clone(),
                writes: s.writes.clone(),
                launch: match cuda {
                    true => Some(launch::contract(s, nsyms, barrier)?),
                    false => None,
                },
                barrier,
            });
        }
        Ok(Manifest {
            format_version: secc_artifact::FORMAT_VERSION,
            compiler_version: opts.compiler_version.clone(),
            model_name: g.name.clone(),
            targets: vec![target],
            symbols: g.sym_names.clone(),
            constraints: g.constraints.iter().map(plan::constraint_decl).collect(),
            buffers: p.buffers.clone(),
            inputs: p.inputs.clone(),
            outputs: p.outputs.clone(),
            kernels,
            se_blocks: p.se_blocks,
            sections: vec![],
        })
    };
    let weights_crc = crc32fast::hash(&p.weights);
    let gen = generate(
        g,
        &p,
        &opts.target,
        &mut |t, b| {
            Ok(secc_artifact::layout_digest(
                &manifest_for(t.clone(), b)?,
                weights_crc,
            )?)
        },
        stage,
    )?;
    let t1 = std::time::Instant::now();
    let manifest = manifest_for(gen.target, &gen.barriers)?;
    check_memory(&manifest, &p, opts.memory_limit)?;
    let bytes = secc_artifact::write(
        manifest,
        &[("weights", &p.weights), (gen.section.0, &gen.section.1)],
    )?;
    stage("artifact (manifest, checksums)", t1.elapsed());
    Ok(bytes)
}
