//! Importers for element-wise ops on float32 tensors: the binary arithmetic (Add, Sub, Mul,
//! Div, PRelu, Pow), the activations and other unary functions (one `Op::Act` each, Clip
//! included), the variadic Sum, Mean, Min and Max, and Where and the comparisons and logic
//! ops (booleans are 0.0/1.0 floats).
use super::{Failure, Importer, R};
use crate::attrs::NodeCx;
use secc_ir::{Activation, BinaryOp, ConstData, Op, ValueId};

impl Importer<'_> {
    /// Add, Sub, Mul and Div: one broadcasting binary op.
    pub(super) fn binary(&mut self, cx: &NodeCx, op: BinaryOp) -> R<()> {
        let (a, b) = (self.operand(cx, 0)?, self.operand(cx, 1)?);
        self.add(cx, Op::Binary(op), &[a, b])
    }

    /// One activation of input 0 (the parameterless ones are registered with it directly).
    pub(super) fn act(&mut self, cx: &NodeCx, a: Activation) -> R<()> {
        let x = self.operand(cx, 0)?;
        self.add(cx, Op::Act(a), &[x])
    }

    pub(super) fn leaky_relu(&mut self, cx: &NodeCx) -> R<()> {
        let alpha = cx.float_or("alpha", 0.01)?;
        self.act(cx, Activation::LeakyRelu { alpha })
    }

    pub(super) fn elu(&mut self, cx: &NodeCx) -> R<()> {
        let alpha = cx.float_or("alpha", 1.0)?;
        self.act(cx, Activation::Elu { alpha })
    }

    pub(super) fn selu(&mut self, cx: &NodeCx) -> R<()> {
        let alpha = cx.float_or("alpha", 1.673_263_2)?;
        let gamma = cx.float_or("gamma", 1.050_701)?;
        self.act(cx, Activation::Selu { alpha, gamma })
    }

    pub(super) fn celu(&mut self, cx: &NodeCx) -> R<()> {
        let alpha = cx.float_or("alpha", 1.0)?;
        self.act(cx, Activation::Celu { alpha })
    }

    pub(super) fn thresholded_relu(&mut self, cx: &NodeCx) -> R<()> {
        let alpha = cx.float_or("alpha", 1.0)?;
        self.act(cx, Activation::ThresholdedRelu { alpha })
    }

    pub(super) fn gelu(&mut self, cx: &NodeCx) -> R<()> {
        let tanh = match cx.string("approximate")?.as_deref().unwrap_or("none") {
            "none" => false,
            "tanh" => true,
            other => {
                return Err(cx
                    .attr_err("approximate", format!("{other:?} is not valid"))
                    .into())
            }
        };
        self.act(cx, Activation::Gelu { tanh })
    }

    pub(super) fn hard_sigmoid(&mut self, cx: &NodeCx) -> R<()> {
        let alpha = cx.float_or("alpha", 0.2)?;
        let beta = cx.float_or("beta", 0.5)?;
        self.act(cx, Activation::HardSigmoid { alpha, beta })
    }

    /// Clip: constant bounds make one `clip` activation; bounds computed at run time become
    /// `min(max(x, lo), hi)` (ONNX's definition, so `lo > hi` gives `hi`).
    pub(super) fn clip(&mut self, cx: &NodeCx) -> R<()> {
        if self.opset < 11 {
            let min = cx.float_or("min", f32::NEG_INFINITY)?;
            let max = cx.float_or("max", f32::INFINITY)?;
            return self.act(cx, Activation::Clip { min, max });
        }
        let x = self.operand(cx, 0)?;
        let lo = self.scalar_operand(cx, 1, "min")?;
        let hi = self.scalar_operand(cx, 2, "max")?;
        let (cmin, cmax) = (
            match lo {
                Some(Ok(v)) => v,
                _ => f32::NEG_INFINITY,
            },
            match hi {
                Some(Ok(v)) => v,
                _ => f32::INFINITY,
            },
        );
        if !matches!(lo, Some(Err(_))) && !matches!(hi, Some(Err(_))) {
            return self.add(
                cx,
                Op::Act(Activation::Clip {
                    min: cmin,
                    max: cmax,
                }),
                &[x],
            );
        }
        let mut y = x;
        if let Some(Err(l)) = lo {
            y = self.node_at(cx, Op::Binary(BinaryOp::Max), &[y, l])?;
        }
        if cmin != f32::NEG_INFINITY || cmax != f32::INFINITY {
            y = self.node_at(
                cx,
                Op::Act(Activation::Clip {
                    min: cmin,
                    max: cmax,
                }),
                &[y],
            )?;
        }
        if let Some(Err(h)) = hi {
            y = self.node_at(cx, Op::Binary(BinaryOp::Min), &[y, h])?;
        }
        self.def(cx, y)
    }

    pub(super) fn prelu(&mut self, cx: &NodeCx) -> R<()> {
        let (a, b) = (self.operand(cx, 0)?, self.operand(cx, 1)?);
        self.add(cx, Op::Binary(BinaryOp::PRelu), &[a, b])
    }

    /// Sum and Mean of any number of inputs: a chain of adds (Mean divides by the count).
    pub(super) fn sum_mean(&mut self, cx: &NodeCx) -> R<()> {
        let n = cx.node.input.len();
        let mut acc = self.operand(cx, 0)?;
        for i in 1..n {
            let b = self.operand(cx, i)?;
            acc = self
                .g
                .add_node(Op::Binary(BinaryOp::Add), &[acc, b], Some(cx.name.clone()))
                .map_err(|e| cx.err(e.to_string()))?;
        }
        if cx.op() == "Mean" && n > 1 {
            let k = self.g.add_const(
                ConstData::new(vec![], vec![n as f32]),
                Some(cx.name.clone()),
            );
            return self.add(cx, Op::Binary(BinaryOp::Div), &[acc, k]);
        }
        self.add(cx, Op::Identity, &[acc])
    }

    /// Min and Max of any number of inputs: a chain of binary ops.
    pub(super) fn min_max(&mut self, cx: &NodeCx) -> R<()> {
        let op = if cx.op() == "Min" {
            BinaryOp::Min
        } else {
            BinaryOp::Max
        };
        let n = cx.node.input.len();
        if n == 0 {
            return Err(cx.err("needs at least one input").into());
        }
        let mut acc = self.operand(cx, 0)?;
        if n == 1 {
            return self.add(cx, Op::Identity, &[acc]);
        }
        for i in 1..n {
            let b = self.operand(cx, i)?;
            if i + 1 == n {
                return self.add(cx, Op::Binary(op), &[acc, b]);
            }
            acc = self
                .g
                .add_node(Op::Binary(op), &[acc, b], Some(cx.name.clone()))
                .map_err(|e| cx.err(e.to_string()))?;
        }
        unreachable!("loop returns on the last input")
    }

    /// Pow: small constant exponents become products, square roots and reciprocals.
    pub(super) fn pow(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let e = match self.const_scalar_f32(cx, 1, "Y (exponent)") {
            Ok(Some(e)) => e,
            Ok(None) => return Err(cx.err("input 1 (Y) is missing").into()),
            Err(_) => return self.pow_general(cx, x),
        };
        let node = |s: &mut Self, op: Op, ins: &[ValueId]| {
            s.g.add_node(op, ins, Some(cx.name.clone()))
                .map_err(|err| Failure::Error(cx.err(err.to_string())))
        };
        match e {
            1.0 => self.add(cx, Op::Identity, &[x]),
            2.0 => self.add(cx, Op::Binary(BinaryOp::Mul), &[x, x]),
            3.0 => {
                let sq = node(self, Op::Binary(BinaryOp::Mul), &[x, x])?;
                self.add(cx, Op::Binary(BinaryOp::Mul), &[sq, x])
            }
            0.5 => self.add(cx, Op::Act(Activation::Sqrt), &[x]),
            -1.0 | -0.5 => {
                let one = self
                    .g
                    .add_const(ConstData::new(vec![], vec![1.0]), Some(cx.name.clone()));
                let d = if e == -1.0 {
                    x
                } else {
                    node(self, Op::Act(Activation::Sqrt), &[x])?
                };
                self.add(cx, Op::Binary(BinaryOp::Div), &[one, d])
            }
            _ => self.pow_general(cx, x),
        }
    }

    /// Pow with a run-time or non-special exponent.
    pub(super) fn pow_general(&mut self, cx: &NodeCx, x: ValueId) -> R<()> {
        let e = self.operand_or_int_const(cx, 1)?;
        self.add(cx, Op::Binary(BinaryOp::Pow), &[x, e])
    }

    /// Reciprocal: `1 / x`.
    pub(super) fn reciprocal(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let one = self
            .g
            .add_const(ConstData::new(vec![], vec![1.0]), Some(cx.name.clone()));
        self.add(cx, Op::Binary(BinaryOp::Div), &[one, x])
    }

    pub(super) fn where_op(&mut self, cx: &NodeCx) -> R<()> {
        let c = self.operand_or_int_const(cx, 0)?;
        let a = self.operand(cx, 1)?;
        let b = self.operand(cx, 2)?;
        self.add(cx, Op::Where, &[c, a, b])
    }

    /// Comparisons and logic on float data; booleans are 0.0/1.0 floats. `a <= b` is
    /// `(a < b) or (a == b)` (false with a NaN); `or`/`and` of 0/1 values are max/min;
    /// `not x` is `x == 0`.
    pub(super) fn compare(&mut self, cx: &NodeCx) -> R<()> {
        let a = self.operand_or_int_const(cx, 0)?;
        if cx.op() == "Not" {
            let zero = self
                .g
                .add_const(ConstData::new(vec![], vec![0.0]), Some(cx.name.clone()));
            return self.add(cx, Op::Binary(BinaryOp::Equal), &[a, zero]);
        }
        let b = self.operand_or_int_const(cx, 1)?;
        let op = match cx.op() {
            "Equal" => BinaryOp::Equal,
            "Less" => BinaryOp::Less,
            "Greater" => BinaryOp::Greater,
            "And" => BinaryOp::Min,
            "Or" => BinaryOp::Max,
            "LessOrEqual" | "GreaterOrEqual" => {
                let strict = if cx.op() == "LessOrEqual" {
                    BinaryOp::Less
                } else {
                    BinaryOp::Greater
                };
                let lt = self.node_at(cx, Op::Binary(strict), &[a, b])?;
                let eq = self.node_at(cx, Op::Binary(BinaryOp::Equal), &[a, b])?;
                return self.add(cx, Op::Binary(BinaryOp::Max), &[lt, eq]);
            }
            other => unreachable!("compare called for {other}"),
        };
        self.add(cx, Op::Binary(op), &[a, b])
    }
}
