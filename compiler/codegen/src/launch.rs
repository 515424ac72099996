//! The launch contract of each CUDA kernel (docs/artifact.md, "Launch contract"): grid,
//! block, dynamic shared memory and parameter list, derived from the plan's [`Grid`] and
//! written into the manifest, where the runtime's CUDA executor reads it. This is the one
//! place that decides how a PTX kernel is launched.
use crate::plan::{dim_decl, Grid, Step};
use crate::CodegenError;
use secc_artifact::{DimDecl, LaunchDecl, ParamDecl, MAX_EXPR_LEN, MAX_SHARED_BYTES};
use secc_ir::dim_expr::DimExpr;
use secc_ir::Dim;

/// Threads per CTA.
pub const THREADS: u32 = 128;

/// Warps per CTA (32 threads each).
pub const WARPS: u32 = THREADS / 32;

/// Most CTAs of a grid-stride kernel: 2^20 threads, enough for one thread per element of
/// every map of the networks at batch 1 (so adjacent threads touch adjacent elements), and
/// small enough that a kernel's split (`total * thread` in 64 bits) cannot overflow for
/// any tensor the IR allows (2^32 elements).
pub const MAX_STRIDE_CTAS: u64 = 8192;

/// The contract of step `s` of a model with `nsyms` symbols. `barrier`: the body waits at
/// a barrier, which on a GPU only the threads of one CTA can share.
pub fn contract(s: &Step, nsyms: usize, barrier: bool) -> Result<LaunchDecl, CodegenError> {
    let params = s
        .args
        .iter()
        .map(|&a| ParamDecl::Buffer(a))
        .chain((0..nsyms as u32).map(ParamDecl::Symbol))
        .collect();
    let one = || DimDecl::Known(1);
    let unsupported = |msg: String| CodegenError::Unsupported {
        node: format!("{} ({})", s.origin, s.kind.name()),
        msg,
    };
    let (x, shared_bytes) = match s.grid {
        Grid::PerUnit {
            units,
            shared_floats,
        } => {
            let bytes = shared_floats
                .checked_mul(4)
                .and_then(|b| u32::try_from(b).ok())
                .filter(|&b| b <= MAX_SHARED_BYTES)
                .ok_or_else(|| {
                    unsupported(format!(
                        "needs {shared_floats} floats of GPU shared memory per CTA, more than the {MAX_SHARED_BYTES} bytes a GPU has"
                    ))
                })?;
            (dim_decl(units), bytes)
        }
        Grid::Stride(_) if barrier => {
            return Err(unsupported(
                "waits at a barrier across CTAs, which a GPU kernel cannot".into(),
            ))
        }
        Grid::Stride(work) => (stride_ctas(work), 0),
    };
    Ok(LaunchDecl {
        grid: [x, one(), one()],
        block: [THREADS, 1, 1],
        shared_bytes,
        params,
    })
}

/// `min(ceil(work / THREADS), MAX_STRIDE_CTAS)` as a manifest dimension; the cap alone
/// when the count is unknown or its expression too long (any grid is correct for a
/// grid-stride kernel: only its speed depends on it).
fn stride_ctas(work: Option<Dim>) -> DimDecl {
    work.and_then(|w| w.expr().div_ceil(u64::from(THREADS)))
        .and_then(|e| e.minimum(&DimExpr::known(MAX_STRIDE_CTAS as i64)))
        .and_then(Dim::from_expr)
        .map(dim_decl)
        .filter(|d| !matches!(d, DimDecl::Expr { expr } if expr.len() > MAX_EXPR_LEN))
        .unwrap_or(DimDecl::Known(MAX_STRIDE_CTAS))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use secc_ir::SymId;

    #[test]
    fn a_stride_grid_covers_the_work_up_to_the_cap() {
        let n = Dim::sym(SymId(0));
        assert_eq!(stride_ctas(Some(Dim::Known(1000))), DimDecl::Known(8));
        assert_eq!(
            stride_ctas(Some(Dim::Known(1 << 40))),
            DimDecl::Known(MAX_STRIDE_CTAS)
        );
        assert_eq!(stride_ctas(None), DimDecl::Known(MAX_STRIDE_CTAS));
        let per_batch = stride_ctas(n.checked_mul(Dim::Known(64 * 56 * 56)));
        for (batch, ctas) in [(1, 1568), (3, 4704), (8, MAX_STRIDE_CTAS)] {
            assert_eq!(per_batch.eval(&[batch]), Some(ctas), "batch {batch}");
        }
    }
}
