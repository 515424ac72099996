//! Importers for Constant (float values enter the graph, integer ones the importer's integer
//! tensors) and ConstantOfShape of a shape that is not an integer tensor.
use super::shape::IV;
use super::{Failure, Importer, R};
use crate::attrs::NodeCx;
use crate::tensor::{decode, ConstVal};
use secc_ir::ConstData;

impl Importer<'_> {
    pub(super) fn constant(&mut self, cx: &NodeCx) -> R<()> {
        let out = cx
            .node
            .output
            .first()
            .cloned()
            .ok_or_else(|| cx.err("has no output"))?;
        let val = if let Some(t) = cx.tensor("value")? {
            decode(t, self.base).map_err(|m| cx.attr_err("value", m))?
        } else if let Some(f) = cx.float("value_float")? {
            ConstVal::F32(vec![], vec![f])
        } else if let Some(f) = cx.floats("value_floats")? {
            ConstVal::F32(vec![f.len()], f)
        } else if let Some(i) = cx.int("value_int")? {
            ConstVal::I64(vec![], vec![i])
        } else if let Some(i) = cx.ints("value_ints")? {
            ConstVal::I64(vec![i.len()], i)
        } else {
            return Err(cx.err("needs one of value, value_float(s), value_int(s); sparse and string values are not supported").into());
        };
        match val {
            ConstVal::F32(s, d) => {
                let v = self
                    .g
                    .add_const(ConstData::new(s, d), Some(cx.name.clone()));
                self.vals.insert(out, v);
            }
            ConstVal::I64(s, d) => {
                self.ints
                    .insert(out, (s, d.into_iter().map(IV::K).collect()));
            }
        }
        Ok(())
    }

    /// ConstantOfShape of a shape that is not an integer tensor (`int_node` evaluates the rest).
    pub(super) fn constant_of_shape(&mut self, cx: &NodeCx) -> R<()> {
        Err(Failure::Unsupported(
            cx.err("only integer shape inputs are supported"),
        ))
    }
}
