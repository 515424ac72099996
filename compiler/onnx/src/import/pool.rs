//! Importers for the pools and reductions: MaxPool (with its Indices output) and AveragePool,
//! GlobalAveragePool and GlobalMaxPool, and ReduceMean, ReduceSum, ReduceMax and ReduceMin.
use super::conv::window_extents;
use super::{Failure, Importer, R};
use crate::attrs::NodeCx;
use secc_ir::Op;

impl Importer<'_> {
    /// MaxPool and AveragePool: 1-D (`[N, C, L]`) through the 2-D form, 2-D directly.
    pub(super) fn pool(&mut self, cx: &NodeCx) -> R<()> {
        if self.rank_of(cx, 0) == Some(3) {
            return self.via_2d(cx, Self::pool2d);
        }
        self.pool2d(cx)
    }

    fn pool2d(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let xs = self.shape_of(x);
        if xs.len() != 4 {
            return Err(Failure::Unsupported(cx.err(format!(
                "only 1-D and 2-D pooling are supported (input rank {})",
                xs.len()
            ))));
        }
        let two = |name: &str, d: u64| cx.pair(name, d, 1);
        let kernel = match cx.ints("kernel_shape")? {
            Some(v) if v.len() == 2 && v.iter().all(|&x| crate::attrs::in_range(x, 1)) => {
                [v[0] as u64, v[1] as u64]
            }
            Some(v) => {
                return Err(cx
                    .attr_err(
                        "kernel_shape",
                        format!("{v:?} must be two values in 1..={}", secc_ir::MAX_ELEMENTS),
                    )
                    .into())
            }
            None => return Err(cx.attr_err("kernel_shape", "is required").into()),
        };
        let strides = two("strides", 1)?;
        let max = cx.op() == "MaxPool";
        let dilations = two("dilations", 1)?;
        let column_major = match cx.int_or("storage_order", 0)? {
            0 => false,
            1 => true,
            v => {
                return Err(cx
                    .attr_err("storage_order", format!("{v} must be 0 or 1"))
                    .into())
            }
        };
        let eff = window_extents(cx, kernel, dilations)?;
        let pads = self.resolve_pads(cx, [xs[2].known(), xs[3].known()], eff, strides)?;
        let attrs = secc_ir::PoolAttrs {
            kind: if max {
                secc_ir::PoolKind::Max
            } else {
                secc_ir::PoolKind::Avg
            },
            kernel,
            strides,
            pads,
            dilations,
            ceil_mode: cx.int_or("ceil_mode", 0)? != 0,
            count_include_pad: cx.int_or("count_include_pad", 0)? != 0,
        };
        if let Some(name) = cx.node.output.get(1).filter(|s| !s.is_empty()) {
            if !max {
                return Err(cx.err("has a second output; only MaxPool has one").into());
            }
            let pool = attrs.clone();
            let i = self.node_at(cx, Op::MaxPoolIndices { pool, column_major }, &[x])?;
            self.vals.insert(name.clone(), i);
        }
        self.add(cx, Op::Pool2d(attrs), &[x])
    }

    pub(super) fn global_avg_pool(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        self.add(cx, Op::GlobalAvgPool, &[x])
    }

    pub(super) fn global_max_pool(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        self.add(cx, Op::GlobalMaxPool, &[x])
    }

    /// Reductions: ReduceMean keeps its own op (SE detection matches it), the others share
    /// `Op::Reduce`. Axes are an attribute before opset 13 (ReduceSum) or 18 (the others),
    /// an optional input after; empty axes mean all axes unless `noop_with_empty_axes`.
    pub(super) fn reduce(&mut self, cx: &NodeCx) -> R<()> {
        let kind = match cx.op() {
            "ReduceSum" => Some(secc_ir::ReduceKind::Sum),
            "ReduceMax" => Some(secc_ir::ReduceKind::Max),
            "ReduceMin" => Some(secc_ir::ReduceKind::Min),
            _ => None,
        };
        let x = self.operand(cx, 0)?;
        let rank = self.shape_of(x).len();
        let keep_dims = cx.int_or("keepdims", 1)? != 0;
        let axes_input_from = if kind == Some(secc_ir::ReduceKind::Sum) {
            13
        } else {
            18
        };
        let axes = self.axes_input_or_attr(cx, axes_input_from)?;
        let noop = cx.int_or("noop_with_empty_axes", 0)? != 0;
        let axes = match axes {
            Some(a) if !a.is_empty() => self.norm_axes(cx, &a, rank)?,
            _ if noop => return self.add(cx, Op::Identity, &[x]),
            _ => (0..rank).collect(),
        };
        let op = match kind {
            Some(kind) => Op::Reduce {
                kind,
                axes,
                keep_dims,
            },
            None => Op::ReduceMean { axes, keep_dims },
        };
        self.add(cx, op, &[x])
    }
}
