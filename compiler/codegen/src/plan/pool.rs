//! Pooling and reduction kernels: windowed pools and their argmax indices, global pools,
//! reductions over axes and softmax, and the pools over blocked tensors.
use super::{shape_of, view_of, KernelKind};
use secc_ir::{Dim, Graph, NodeId, Op, PoolAttrs, ReduceKind};

/// Windowed max or average pooling over plain NCHW.
pub(super) fn pool2d(g: &Graph, id: NodeId, a: &PoolAttrs) -> KernelKind {
    KernelKind::Pool {
        attrs: a.clone(),
        x: shape_of(g, g.inputs(id)[0]),
        y: shape_of(g, id.into()),
    }
}

/// Where each max-pooling window found its maximum.
pub(super) fn max_pool_indices(
    g: &Graph,
    id: NodeId,
    pool: &PoolAttrs,
    column_major: bool,
) -> KernelKind {
    KernelKind::MaxPoolIndices {
        attrs: pool.clone(),
        x: shape_of(g, g.inputs(id)[0]),
        y: shape_of(g, id.into()),
        column_major,
    }
}

/// A global pool over plain NCHW: a reduction over every axis after `[N, C]`.
pub(super) fn global_pool(g: &Graph, id: NodeId) -> KernelKind {
    let s = shape_of(g, g.inputs(id)[0]);
    KernelKind::ReduceMean {
        axes: (2..s.len()).collect(),
        input: s,
        op: (g.node(id).op == Op::GlobalMaxPool).then_some(ReduceKind::Max),
    }
}

/// A reduction over `axes` (`op` `None`: the mean). The keep flag only changes the shape.
pub(super) fn reduce(g: &Graph, id: NodeId, axes: &[usize], op: Option<ReduceKind>) -> KernelKind {
    KernelKind::ReduceMean {
        input: shape_of(g, g.inputs(id)[0]),
        axes: axes.to_vec(),
        op,
    }
}

/// Softmax along `axis`.
pub(super) fn softmax(g: &Graph, id: NodeId, axis: usize) -> KernelKind {
    KernelKind::Softmax {
        axis,
        shape: shape_of(g, g.inputs(id)[0]),
    }
}

/// Windowed pooling of a blocked tensor over a batch of `n`.
pub(super) fn pool_blocked(g: &Graph, id: NodeId, a: &PoolAttrs, n: Dim) -> KernelKind {
    KernelKind::PoolBlocked {
        attrs: a.clone(),
        n,
        x: view_of(g, g.inputs(id)[0]),
        y: view_of(g, id.into()),
    }
}

/// Global pool of a blocked tensor into a plain `[N, C, 1, 1]`.
pub(super) fn global_pool_blocked(g: &Graph, id: NodeId, n: Dim) -> KernelKind {
    KernelKind::GlobalPoolBlocked {
        n,
        view: view_of(g, g.inputs(id)[0]),
        max: g.node(id).op == Op::GlobalMaxPool,
    }
}
