//! Loading the CPU code of an artifact: target and CPU-feature checks, then the shared
//! object is written to a private temporary file, `dlopen`ed and its kernels resolved.
//! This module holds the runtime's FFI.
use crate::RuntimeError;
use secc_artifact::TargetDecl;
use std::ffi::c_void;

/// Signature of every CPU kernel (see secc-codegen's `Kb`).
pub type KernelFn = unsafe extern "C" fn(
    *const *mut f32,
    *const i64,
    i64,
    i64,
    extern "C" fn(*mut c_void),
    *mut c_void,
);

/// Returns whether the host has a CPU feature, `None` if the name is not one we can test.
fn host_has(feature: &str) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! check {
            ($($name:tt),*) => {
                match feature {
                    $($name => Some(std::arch::is_x86_feature_detected!($name)),)*
                    "sse4.1" => Some(std::arch::is_x86_feature_detected!("sse4.1")),
                    "sse4.2" => Some(std::arch::is_x86_feature_detected!("sse4.2")),
                    "bmi" | "bmi1" => Some(std::arch::is_x86_feature_detected!("bmi1")),
                    "cx16" => Some(std::arch::is_x86_feature_detected!("cmpxchg16b")),
                    _ => None,
                }
            };
        }
        check!(
            "sse",
            "sse2",
            "sse3",
            "ssse3",
            "popcnt",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "bmi2",
            "lzcnt",
            "movbe",
            "avx512f",
            "avx512bw",
            "avx512cd",
            "avx512dq",
            "avx512vl",
            "avx512vnni",
            "avx512bf16",
            "avx512fp16",
            "avx512vbmi",
            "avx512vbmi2",
            "avx512ifma",
            "avx512bitalg",
            "avx512vpopcntdq",
            "avxvnni",
            "aes",
            "pclmulqdq",
            "sha",
            "adx",
            "rdrand",
            "rdseed",
            "xsave",
            "gfni",
            "vaes",
            "vpclmulqdq"
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = feature;
        None
    }
}

/// Checks that this host can run code for `t`.
pub fn check_target(t: &TargetDecl) -> Result<(), RuntimeError> {
    if t.kind != "cpu" {
        return Err(RuntimeError::Target(format!(
            "unknown target kind {:?}",
            t.kind
        )));
    }
    let arch = t.triple.split('-').next().unwrap_or("");
    if arch != std::env::consts::ARCH
        || !t.triple.contains("linux")
        || std::env::consts::OS != "linux"
    {
        return Err(RuntimeError::Target(format!(
            "artifact is for {} but this host is {}-{}",
            t.triple,
            std::env::consts::ARCH,
            std::env::consts::OS
        )));
    }
    let missing: Vec<&str> = t
        .features
        .iter()
        .map(|s| s.as_str())
        .filter(|f| host_has(f) == Some(false))
        .collect();
    if !missing.is_empty() {
        return Err(RuntimeError::Target(format!(
            "artifact was compiled for CPU {:?} and needs CPU features this host lacks: {}; recompile with `--cpu x86-64-v3` (or `x86-64`) for portable code",
            t.cpu,
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The mapped shared object and its kernels.
pub struct Code {
    _lib: libloading::Library,
    /// kernel entry points, in manifest order
    pub kernels: Vec<KernelFn>,
    /// the layout digest the code was compiled with (see `secc_artifact::layout_digest`)
    pub digest: u32,
}

/// Maps the shared object and resolves `names`.
///
/// The caller has already verified the artifact's checksums and target.
pub fn load(so: &[u8], names: &[String]) -> Result<Code, RuntimeError> {
    let mut f = tempfile::Builder::new()
        .prefix("secc-kernels-")
        .suffix(".so")
        .tempfile()
        .map_err(|e| RuntimeError::Load(e.to_string()))?;
    std::io::Write::write_all(&mut f, so).map_err(|e| RuntimeError::Load(e.to_string()))?;
    // SAFETY: loading runs the object's initialisers. The object is the code section of an
    // artifact whose checksums and target were verified, produced by secc's code generator,
    // which emits no initialisers (it is linked with -nostartfiles). Trust model: artifacts
    // are code, like shared libraries; load only files produced by secc (see Model::load).
    let lib = unsafe { libloading::Library::new(f.path()) }
        .map_err(|e| RuntimeError::Load(e.to_string()))?;
    drop(f); // the mapping stays valid after the file is removed
    let mut kernels = Vec::with_capacity(names.len());
    for n in names {
        // SAFETY: every kernel secc emits has exactly the `KernelFn` signature.
        let sym: libloading::Symbol<KernelFn> = unsafe { lib.get(n.as_bytes()) }
            .map_err(|e| RuntimeError::Load(format!("kernel {n}: {e}")))?;
        kernels.push(*sym);
    }
    let sym = secc_artifact::DIGEST_SYMBOL;
    // SAFETY: the code generator exports this symbol as a constant u32; reading it runs no
    // code from the object.
    let digest = unsafe { lib.get::<*const u32>(sym.as_bytes()) }
        .map(|p| {
            // SAFETY: as above: `p` points to the u32 in the mapped object, alive with `lib`.
            unsafe { **p }
        })
        .map_err(|_| RuntimeError::Load(format!("the code exports no {sym}")))?;
    Ok(Code {
        _lib: lib,
        kernels,
        digest,
    })
}
