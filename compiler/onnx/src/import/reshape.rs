//! Importers for the ops that keep every element and its order: Identity, Dropout (inference
//! mode), and the shape changes Flatten, Reshape, Squeeze and Unsqueeze.
use super::shape::IV;
use super::{Importer, R};
use crate::attrs::NodeCx;
use secc_ir::{ConstData, Dim, Op, Shape, TensorType};

impl Importer<'_> {
    pub(super) fn identity(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        self.add(cx, Op::Identity, &[x])
    }

    /// Dropout in inference mode: Identity, and an all-true mask when one is asked for.
    pub(super) fn dropout(&mut self, cx: &NodeCx) -> R<()> {
        if let Some(name) = cx.input(2) {
            let training = self
                .ints
                .get(name)
                .map(|(_, d)| d.first().copied().unwrap_or(IV::K(0)));
            if training != Some(IV::K(0)) {
                return Err(cx.err("input 2 (training_mode) must be a constant false; training-mode Dropout is not supported").into());
            }
        }
        let x = self.operand(cx, 0)?;
        if let Some(mask) = cx.node.output.get(1).filter(|s| !s.is_empty()) {
            // inference mode keeps every element: an all-true mask (as 1.0)
            let one = self
                .g
                .add_const(ConstData::new(vec![], vec![1.0]), Some(cx.name.clone()));
            let m = self
                .g
                .add_node(
                    Op::Expand {
                        shape: self.shape_of(x),
                    },
                    &[one],
                    Some(cx.name.clone()),
                )
                .map_err(|e| cx.err(e.to_string()))?;
            self.vals.insert(mask.clone(), m);
        }
        self.add(cx, Op::Identity, &[x])
    }

    pub(super) fn flatten(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let s = self.shape_of(x);
        let axis = cx.int_or("axis", 1)?;
        let axis = if axis == s.len() as i64 {
            s.len()
        } else {
            cx.axis("axis", axis, s.len().max(1))?
        };
        let prod = |d: &[Dim]| d.iter().try_fold(Dim::Known(1), |a, &b| a.checked_mul(b));
        let (a, b) = (prod(&s[..axis]), prod(&s[axis..]));
        let (Some(a), Some(b)) = (a, b) else {
            return Err(cx
                .err("flattened extent would be a product of symbolic dimensions")
                .into());
        };
        self.add(
            cx,
            Op::Reshape {
                shape: [a, b].into_iter().collect(),
            },
            &[x],
        )
    }

    pub(super) fn reshape(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let target = self.shape_ints(cx, 1, "shape")?;
        let allowzero = cx.int_or("allowzero", 0)? != 0;
        let s = self.shape_of(x);
        let mut out: Vec<Option<Dim>> = Vec::with_capacity(target.len());
        for (i, &t) in target.iter().enumerate() {
            let t = match t {
                IV::K(k) => k,
                IV::S(d) => {
                    out.push(Some(d));
                    continue;
                }
            };
            out.push(match t {
                -1 => None,
                0 if !allowzero => Some(*s.get(i).ok_or_else(|| {
                    cx.err(format!(
                        "shape[{i}] = 0 copies an axis the input (rank {}) does not have",
                        s.len()
                    ))
                })?),
                t if crate::attrs::in_range(t, 0) => Some(Dim::Known(t as u64)),
                t if t > 0 => {
                    return Err(cx
                        .err(format!(
                            "shape[{i}] = {t} exceeds the size limit {}",
                            secc_ir::MAX_ELEMENTS
                        ))
                        .into())
                }
                t => return Err(cx.err(format!("shape[{i}] = {t} is invalid")).into()),
            });
        }
        if out.iter().filter(|d| d.is_none()).count() > 1 {
            return Err(cx.err("shape has more than one -1").into());
        }
        let total = TensorType::f32(s.iter().copied())
            .numel()
            .ok_or_else(|| cx.err("input size is a product of symbols"))?;
        let dims: Vec<Dim> = out.iter().flatten().copied().collect();
        let known = dims
            .iter()
            .try_fold(Dim::Known(1), |a, &b| a.checked_mul(b))
            .ok_or_else(|| {
                let syms = dims.iter().filter(|d| d.known().is_none()).count();
                cx.err(if syms > 1 {
                    "target size is a product of symbols".to_string()
                } else {
                    format!(
                        "target shape {:?} exceeds the size limit of {} elements",
                        dims.iter()
                            .map(|d| d.display(&self.g.sym_names))
                            .collect::<Vec<_>>(),
                        secc_ir::MAX_ELEMENTS
                    )
                })
            })?;
        let fill = if out.iter().any(|d| d.is_none()) {
            Some(total.checked_div(known).ok_or_else(|| {
                cx.err(format!(
                    "cannot infer -1: {} elements do not divide into {}",
                    total.display(&self.g.sym_names),
                    known.display(&self.g.sym_names)
                ))
            })?)
        } else {
            None
        };
        let shape: Shape = out
            .into_iter()
            .map(|d| d.or(fill).unwrap_or(Dim::Known(1)))
            .collect();
        self.add(cx, Op::Reshape { shape }, &[x])
    }

    pub(super) fn squeeze(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let s = self.shape_of(x);
        let axes = match self.axes_input_or_attr(cx, 13)? {
            Some(a) => self.norm_axes(cx, &a, s.len())?,
            None => (0..s.len()).filter(|&i| s[i] == Dim::Known(1)).collect(),
        };
        for &a in &axes {
            if s[a] != Dim::Known(1) {
                return Err(cx
                    .attr_err(
                        "axes",
                        format!(
                            "axis {a} has extent {}, not 1",
                            s[a].display(&self.g.sym_names)
                        ),
                    )
                    .into());
            }
        }
        let shape: Shape = s
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect();
        self.add(cx, Op::Reshape { shape }, &[x])
    }

    pub(super) fn unsqueeze(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let s = self.shape_of(x);
        let axes = self
            .axes_input_or_attr(cx, 13)?
            .ok_or_else(|| cx.err("needs axes"))?;
        let rank = s.len() + axes.len();
        let axes = self.norm_axes(cx, &axes, rank)?;
        let mut it = s.iter();
        let mut shape = Shape::new();
        for i in 0..rank {
            if axes.contains(&i) {
                shape.push(Dim::Known(1));
            } else {
                shape.push(*it.next().ok_or_else(|| cx.err("axes out of range"))?);
            }
        }
        self.add(cx, Op::Reshape { shape }, &[x])
    }
}
