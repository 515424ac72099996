//! Data-movement kernels: slice, resize (and its tap tables), concat (plain and blocked),
//! pad, transpose, the compile-time int64 tensors, and reorders between layouts.
use super::{push_weight, shape_of, unsupported, view_of, KernelKind, Plan};
use crate::CodegenError;
use secc_artifact::DimDecl;
use secc_ir::{Dim, Graph, IntElem, Layout, NodeId, PadMode, ResizeAttrs};

/// Strided window (Slice, Split, constant-index Gather).
pub(super) fn slice(g: &Graph, id: NodeId, starts: &[u64], steps: &[i64]) -> KernelKind {
    KernelKind::Slice {
        starts: starts.to_vec(),
        steps: steps.to_vec(),
        input: shape_of(g, g.inputs(id)[0]),
        out: shape_of(g, id.into()),
    }
}

/// Spatial resize; `lanes` is the channel block of x and y (1: plain NCHW).
pub(super) fn resize(g: &Graph, id: NodeId, a: &ResizeAttrs, lanes: u64) -> KernelKind {
    KernelKind::Resize {
        attrs: a.clone(),
        x: shape_of(g, g.inputs(id)[0]),
        lanes,
    }
}

/// Stores the row and column tap tables of a resize and appends them to its arguments:
/// per output coordinate (first index, second index, weight), as f32 (exact for indices
/// below 2^24, far above any image extent).
pub(super) fn push_tap_tables(
    g: &Graph,
    id: NodeId,
    attrs: &ResizeAttrs,
    x: &[Dim],
    p: &mut Plan,
    args: &mut Vec<u32>,
) -> Result<(), CodegenError> {
    for axis in 0..2 {
        // a symbolic axis computes its taps in the kernel
        let Some((inl, outl)) = crate::resize::table_extents(attrs, x, axis) else {
            continue;
        };
        if inl >= 1 << 24 {
            return Err(unsupported(g, id, "resize input extent of 2^24 or more"));
        }
        let taps = attrs.taps(axis, inl, outl);
        // the kernel loads through these indices unchecked: they must be in range
        if taps.iter().any(|t| t.i0 >= inl || t.i1 >= inl) {
            return Err(unsupported(
                g,
                id,
                "resize tap outside the input (internal)",
            ));
        }
        let tab: Vec<f32> = taps
            .iter()
            .flat_map(|t| [t.i0 as f32, t.i1 as f32, t.w])
            .collect();
        let b = push_weight(p, vec![DimDecl::Known(tab.len() as u64)], &tab);
        args.push(b);
    }
    Ok(())
}

/// Concatenation of plain tensors along `axis`.
pub(super) fn concat(g: &Graph, id: NodeId, axis: usize) -> KernelKind {
    KernelKind::Concat {
        axis,
        ins: g.inputs(id).iter().map(|x| shape_of(g, *x)).collect(),
    }
}

/// Channel concatenation of blocked images over a batch of `n`.
pub(super) fn concat_blocked(g: &Graph, id: NodeId, n: Dim) -> KernelKind {
    KernelKind::ConcatBlocked {
        n,
        ins: g.inputs(id).iter().map(|x| view_of(g, *x)).collect(),
        y: view_of(g, id.into()),
    }
}

/// Border padding.
pub(super) fn pad(g: &Graph, id: NodeId, pads: &[(u64, u64)], mode: PadMode) -> KernelKind {
    KernelKind::Pad {
        pads: pads.to_vec(),
        mode,
        input: shape_of(g, g.inputs(id)[0]),
    }
}

/// Axis permutation.
pub(super) fn transpose(g: &Graph, id: NodeId, perm: &[usize]) -> KernelKind {
    KernelKind::Transpose {
        perm: perm.to_vec(),
        input: shape_of(g, g.inputs(id)[0]),
    }
}

/// An int64 tensor known up to the batch, written by the kernel.
pub(super) fn int_tensor(values: &[IntElem]) -> KernelKind {
    KernelKind::IntTensor {
        values: values.to_vec(),
    }
}

/// A reorder to or from the blocked layout; the view is the blocked side's.
pub(super) fn reorder(g: &Graph, id: NodeId, to: Layout, n: Dim) -> KernelKind {
    let to_blocked = to.block().is_some();
    KernelKind::Reorder {
        n,
        view: if to_blocked {
            view_of(g, id.into())
        } else {
            view_of(g, g.inputs(id)[0])
        },
        to_blocked,
    }
}
