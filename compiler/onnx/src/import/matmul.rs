//! Importers for the matrix products: Gemm and MatMul.
use super::{Importer, R};
use crate::attrs::NodeCx;
use secc_ir::{GemmAttrs, Op};

impl Importer<'_> {
    pub(super) fn gemm(&mut self, cx: &NodeCx) -> R<()> {
        let a = self.operand(cx, 0)?;
        let b = self.operand(cx, 1)?;
        let mut ins = vec![a, b];
        if cx.input(2).is_some() {
            ins.push(self.operand(cx, 2)?);
        }
        let attrs = GemmAttrs {
            alpha: cx.float_or("alpha", 1.0)?,
            beta: cx.float_or("beta", 1.0)?,
            trans_a: cx.int_or("transA", 0)? != 0,
            trans_b: cx.int_or("transB", 0)? != 0,
        };
        self.add(cx, Op::Gemm(attrs), &ins)
    }

    pub(super) fn matmul(&mut self, cx: &NodeCx) -> R<()> {
        let (a, b) = (self.operand(cx, 0)?, self.operand(cx, 1)?);
        self.add(cx, Op::MatMul, &[a, b])
    }
}
