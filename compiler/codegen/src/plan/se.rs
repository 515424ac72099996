//! The fused squeeze-and-excitation kernel and the gate step (the same kernel without the
//! scale): their shapes and images per block, FC2's weights stored transposed, and the
//! scratch buffer; and the GPU's split form of both ([`push_split`]).
use super::{push_weight, shape_of, unsupported, Buffers, EwFn, Grid, KernelKind, Plan, Step};
use crate::CodegenError;
use secc_artifact::{BufferDecl, BufferKind, DimDecl};
use secc_ir::{BinaryOp, Dim, Graph, NodeId, Op, SeAttrs, SeGateAttrs, ValueId};

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

/// The GPU's form of an SE block or gate step: steps that each spread over the whole
/// device, replayed together in the CUDA graph (the fused kernel's one CTA per image leaves
/// an H200 idle at batch 1). The channel means, one CTA per `(image, channel)` plane
/// (skipped when the producer pooled x); FC1 and FC2, a warp per output row (coalesced
/// reads of the weights as stored, `[R, C]` and `[C, R]`); the scale, a grid-stride
/// broadcasting multiply. A gate step ends after FC2, whose gates `[N, C]` are its result.
pub(super) fn push_split(
    g: &Graph,
    id: NodeId,
    p: &mut Plan,
    bufs: &mut Buffers,
) -> Result<(), CodegenError> {
    let (a, gate_only) = match &g.node(id).op {
        Op::SqueezeExcite(a) => (*a, false),
        Op::SeGate(s) => (
            SeAttrs {
                inner: s.inner,
                gate: s.gate,
                residual: false,
                act: None,
                pooled: false,
            },
            true,
        ),
        _ => return Err(unsupported(g, id, "not an SE block")),
    };
    if a.residual || a.act.is_some() {
        return Err(unsupported(
            g,
            id,
            "an SE block's residual epilogue needs a blocked layout",
        ));
    }
    let ins = g.inputs(id);
    if g.ty(ins[0]).layout.block().is_some() {
        return Err(unsupported(
            g,
            id,
            "the GPU's SE form reads plain NCHW tensors",
        ));
    }
    let buf = |v: ValueId| {
        bufs.of
            .get(&v)
            .copied()
            .ok_or_else(|| unsupported(g, id, "an SE operand has no buffer"))
    };
    let (x, w1, b1, w2, b2) = (
        buf(ins[0])?,
        buf(ins[1])?,
        buf(ins[2])?,
        buf(ins[3])?,
        buf(ins[4])?,
    );
    let xs = shape_of(g, ins[0]);
    let n = xs[0];
    let c = xs
        .get(1)
        .and_then(|d| d.known())
        .ok_or_else(|| unsupported(g, id, "SE block needs a known channel count"))?;
    let r = g.ty(ins[1]).shape[0]
        .known()
        .ok_or_else(|| unsupported(g, id, "squeeze width must be known"))?;
    let origin = g.node(id).origin.clone().unwrap_or_default();
    let temp = |p: &mut Plan, width: u64| {
        p.buffers.push(BufferDecl {
            dtype: "f32".into(),
            shape: vec![super::dim_decl(n), DimDecl::Known(width)],
            kind: BufferKind::Temp,
        });
        p.buffers.len() as u32 - 1
    };
    let means = match a.means_slot() {
        Some(slot) => buf(ins[slot])?,
        // a gate step reading a convolution's channel means
        None if xs.len() == 2 => x,
        None => {
            let means = temp(p, c);
            let planes = n
                .checked_mul(Dim::Known(c))
                .ok_or_else(|| unsupported(g, id, "too many channel planes"))?;
            let kind = KernelKind::PlaneMean {
                planes,
                h: xs[2],
                w: xs[3],
            };
            let grid = Grid::PerUnit {
                units: planes,
                shared_floats: u64::from(crate::launch::WARPS),
            };
            push(p, kind, &origin, vec![x, means], grid);
            means
        }
    };
    let fc =
        |p: &mut Plan, rows: u64, cols: u64, act, args: Vec<u32>| -> Result<(), CodegenError> {
            let units = n
                .checked_mul(Dim::Known(rows.div_ceil(u64::from(crate::launch::WARPS))))
                .ok_or_else(|| unsupported(g, id, "too many FC rows"))?;
            let kind = KernelKind::RowDot { n, rows, cols, act };
            let grid = Grid::PerUnit {
                units,
                shared_floats: 0,
            };
            push(p, kind, &origin, args, grid);
            Ok(())
        };
    let hidden = temp(p, r);
    fc(p, r, c, a.inner, vec![means, w1, b1, hidden])?;
    p.se_blocks += 1;
    if gate_only {
        let y = super::result_buffers(g, id, p, bufs)[0];
        return fc(p, c, r, a.gate, vec![hidden, w2, b2, y]);
    }
    let gates = temp(p, c);
    fc(p, c, r, a.gate, vec![hidden, w2, b2, gates])?;
    let y = super::result_buffers(g, id, p, bufs)[0];
    let kind = KernelKind::Elementwise {
        f: EwFn::Binary(BinaryOp::Mul),
        out: xs.clone(),
        ins: vec![
            xs.clone(),
            vec![n, Dim::Known(c), Dim::Known(1), Dim::Known(1)],
        ],
    };
    let work = xs.iter().try_fold(Dim::Known(1), |t, d| t.checked_mul(*d));
    push(p, kind, &origin, vec![x, gates, y], Grid::Stride(work));
    Ok(())
}

/// Appends a step whose last argument is the one buffer it writes.
fn push(p: &mut Plan, kind: KernelKind, origin: &str, args: Vec<u32>, grid: Grid) {
    let writes = args.last().copied().into_iter().collect();
    p.steps.push(Step {
        name: format!("k{}_{}", p.steps.len(), kind.name()),
        kind,
        origin: origin.to_string(),
        args,
        writes,
        grid,
    });
}
