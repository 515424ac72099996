//! The fused squeeze-and-excitation kernel and the gate step (the same kernel without the
//! scale): their shapes and images per block, FC2's weights stored transposed, and the
//! scratch buffer.
use super::{push_weight, shape_of, unsupported, KernelKind, Plan};
use crate::CodegenError;
use secc_artifact::{BufferDecl, BufferKind, DimDecl};
use secc_ir::{Dim, Graph, NodeId, SeAttrs, SeGateAttrs};

/// Images per SE block iteration on the CPU: weight-heavy blocks (small maps, many channels)
/// take many images per pass over the FC weights; otherwise as many as keep the block's X in
/// cache between the pool and the scale.
fn block_images(c: u64, r: u64, hw: u64) -> u64 {
    let img = c * hw * 4;
    let weights = 2 * c * r * 4;
    if weights >= 2 * img {
        16
    } else {
        ((1536 * 1024) / img.max(1)).clamp(1, 16)
    }
}

/// The SE kernel of a node; blocking over images is a CPU choice (the GPU runs one image
/// per CTA).
pub(super) fn kind(
    g: &Graph,
    id: NodeId,
    a: &SeAttrs,
    cpu: bool,
) -> Result<KernelKind, CodegenError> {
    let ins = g.inputs(id);
    let mut x = shape_of(g, ins[0]);
    // already pooled (a gate step reading a convolution's channel means): a 1x1 map
    if x.len() == 2 {
        x.extend([Dim::Known(1), Dim::Known(1)]);
    }
    if x[1].known().is_none() {
        return Err(unsupported(g, id, "SE block needs a known channel count"));
    }
    let r = g.ty(ins[1]).shape[0]
        .known()
        .ok_or_else(|| unsupported(g, id, "squeeze width must be known"))?;
    let (c, hw) = (
        x[1].known().unwrap_or(1),
        super::typical(x[2]) * super::typical(x[3]),
    );
    let block = if cpu { block_images(c, r, hw) } else { 1 };
    Ok(KernelKind::SqueezeExcite {
        attrs: *a,
        x,
        r,
        block,
        lanes: g.ty(ins[0]).layout.block().map_or(1, u64::from),
        gate_only: false,
    })
}

/// The gate step of an SE block whose consumer does the scale: the same kernel without
/// its last phase, writing the gates `[N, C]`.
pub(super) fn gate_kind(
    g: &Graph,
    id: NodeId,
    a: &SeGateAttrs,
    cpu: bool,
) -> Result<KernelKind, CodegenError> {
    let se = SeAttrs {
        inner: a.inner,
        gate: a.gate,
        residual: false,
        act: None,
        pooled: false,
    };
    let mut k = kind(g, id, &se, cpu)?;
    if let KernelKind::SqueezeExcite { gate_only, .. } = &mut k {
        *gate_only = true;
    }
    Ok(k)
}

/// Stores FC2's weights `[C, R]` transposed, `[R, C]` (so FC2 vectorises over channels),
/// as the kernel's fourth argument.
pub(super) fn transpose_w2(
    g: &Graph,
    id: NodeId,
    x: &[Dim],
    r: u64,
    p: &mut Plan,
    args: &mut [u32],
) -> Result<(), CodegenError> {
    let w2 = g
        .const_of(g.inputs(id)[3])
        .ok_or_else(|| unsupported(g, id, "SE weights must be constants"))?;
    let c = x[1].known().unwrap_or(0) as usize;
    let r = r as usize;
    let mut t = vec![0f32; w2.data.len()];
    for ci in 0..c {
        for j in 0..r {
            t[j * c + ci] = w2.data[ci * r + j];
        }
    }
    args[3] = push_weight(
        p,
        vec![DimDecl::Known(r as u64), DimDecl::Known(c as u64)],
        &t,
    );
    Ok(())
}

/// Declares the kernel's scratch: `block * (C + R)` floats, C padded to the channel block.
pub(super) fn scratch(p: &mut Plan, x: &[Dim], r: u64, block: u64, lanes: u64) -> u32 {
    let c = x[1].known().unwrap_or(0).div_ceil(lanes) * lanes;
    p.buffers.push(BufferDecl {
        dtype: "f32".into(),
        shape: vec![DimDecl::Known(block * (c + r))],
        kind: BufferKind::Temp,
    });
    p.buffers.len() as u32 - 1
}
