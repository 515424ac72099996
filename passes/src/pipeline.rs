//! The default pass order, and lookup by name for `--passes`.
//!
//! 1. `remove-identity` first: Paddle puts Identity between every step, and every matcher
//!    after it would otherwise have to look through them.
//! 2. `const-fold` next, so bias constants written as `Reshape(const)` or arithmetic on
//!    constants become plain constants the SE rules can read.
//! 3. `canonicalise` rewrites shape-only glue (reshape chains, Unsqueeze per axis, Expand,
//!    transposes of extent-1 axes) and sinks layout transposes through element-wise ops until
//!    they cancel, so NHWC exports and every spelling of an SE block's glue reach one form;
//!    before `affine-fold`, whose multiplies and adds then sit right after their convolution.
//! 4. `affine-fold` folds per-channel multiplies and adds by constants (BatchNormalization,
//!    separate bias adds) into the producing convolution, so the SE block's input is a
//!    plain conv output and its 1x1 convs carry their bias.
//! 5. `se-fuse` (egg) finds and fuses SE blocks on the cleaned graph.
//! 6. `dce` drops the chains `se-fuse` replaced, so the next passes see the live graph.
//! 7. `cse` merges duplicate nodes and constants (after `se-fuse`, so sharing cannot hide a
//!    pattern).
//! 8. `fuse-conv-act` makes activations convolution epilogues.
//! 9. `fuse-elementwise` folds the remaining element-wise chains into single kernels.
//! 10. `dce` last removes what fusion orphaned (the unfused chain, unused weights).
//!
//! Then the target's lowering passes ([`LOWERING`], built by [`lowering`] from the
//! [`TargetOptions`] the code generator gives): `assign-layout` chooses blocked layouts on a
//! CPU, last, so every pass before it sees plain tensors only; `fuse-conv-residual` then
//! folds residual adds into the blocked convolutions' epilogues, and `fuse-se-pool` moves
//! SE gate steps' pools into the convolutions producing their inputs.
use crate::{
    AffineFold, AssignLayout, Canonicalise, ConstFold, Cse, DeadCode, FuseConvAct, FuseElementwise,
    Pass, PassError, RemoveIdentity, SeFuse,
};

/// Names of all passes, in default order.
pub const ALL: &[&str] = &[
    "remove-identity",
    "const-fold",
    "canonicalise",
    "affine-fold",
    "se-fuse",
    "dce",
    "cse",
    "fuse-conv-act",
    "fuse-elementwise",
    "dce",
];

/// What the target decides about the lowering passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetOptions {
    /// channel block of the blocked layout (the vector width), `None` to keep plain layouts
    /// (the GPU)
    pub block: Option<u32>,
}

/// Names of the target-dependent passes, in order, run after [`ALL`].
pub const LOWERING: &[&str] = &["assign-layout", "fuse-conv-residual", "fuse-se-pool"];

/// The lowering passes for a target.
pub fn lowering(t: &TargetOptions) -> Vec<Box<dyn Pass>> {
    LOWERING
        .iter()
        .filter_map(|n| by_name_for(n, t).ok())
        .collect()
}

/// A pass by name, target-dependent ones built for `t`.
pub fn by_name_for(name: &str, t: &TargetOptions) -> Result<Box<dyn Pass>, PassError> {
    match (name, t.block) {
        ("assign-layout", Some(block)) => Ok(Box::new(AssignLayout { block })),
        ("assign-layout", None) => Err(PassError::InPass {
            pass: "assign-layout",
            msg: "this target keeps plain layouts".into(),
        }),
        ("fuse-conv-residual", Some(_)) => Ok(Box::new(crate::FuseConvResidual)),
        ("fuse-conv-residual", None) => Err(PassError::InPass {
            pass: "fuse-conv-residual",
            msg: "this target has no blocked convolutions".into(),
        }),
        ("fuse-se-pool", Some(_)) => Ok(Box::new(crate::FuseSePool)),
        ("fuse-se-pool", None) => Err(PassError::InPass {
            pass: "fuse-se-pool",
            msg: "this target has no blocked convolutions".into(),
        }),
        _ => by_name(name),
    }
}

/// A pass of the default pipeline by name.
pub fn by_name(name: &str) -> Result<Box<dyn Pass>, PassError> {
    Ok(match name {
        "remove-identity" => Box::new(RemoveIdentity),
        "const-fold" => Box::new(ConstFold),
        "canonicalise" => Box::new(Canonicalise),
        "affine-fold" => Box::new(AffineFold),
        "se-fuse" => Box::new(SeFuse::default()),
        "cse" => Box::new(Cse),
        "fuse-conv-act" => Box::new(FuseConvAct),
        "fuse-elementwise" => Box::new(FuseElementwise),
        "dce" => Box::new(DeadCode),
        other => return Err(PassError::UnknownPass(other.into(), ALL.join(", "))),
    })
}

/// The default pipeline.
pub fn default_pipeline() -> Vec<Box<dyn Pass>> {
    ALL.iter()
        .map(|n| by_name(n).expect("invariant: ALL names are known"))
        .collect()
}

/// The default pipeline without SE fusion (for comparisons and `--no-fuse`).
pub fn no_fuse_pipeline() -> Vec<Box<dyn Pass>> {
    ALL.iter()
        .filter(|n| **n != "se-fuse")
        .map(|n| by_name(n).expect("invariant: ALL names are known"))
        .collect()
}
