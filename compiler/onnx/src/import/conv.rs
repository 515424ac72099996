//! Importers for Conv and ConvTranspose, and what they share with the pools: explicit pads
//! from `pads`/`auto_pad`, the dilated window extents, and the 1-D form of all four ops run
//! as their 2-D form over `[N, C, 1, L]` (`via_2d`).
use super::{unsupported, Failure, Importer, R};
use crate::attrs::{in_range, NodeCx};
use crate::error::NodeError;
use secc_ir::{Conv2dAttrs, ConvTransposeAttrs, Dim, Op};

/// The extents `d * (k - 1) + 1` dilated windows cover, each within the size limit.
pub(super) fn window_extents(cx: &NodeCx, k: [u64; 2], d: [u64; 2]) -> Result<[u64; 2], NodeError> {
    let one = |i: usize| {
        secc_ir::dilated(k[i], d[i])
            .filter(|&v| v <= secc_ir::MAX_ELEMENTS)
            .ok_or_else(|| {
                cx.err(format!(
                    "a window of {} taps at dilation {} (axis {}) is empty or exceeds the size limit 2^32",
                    k[i],
                    d[i],
                    2 + i
                ))
            })
    };
    Ok([one(0)?, one(1)?])
}

impl Importer<'_> {
    /// Conv: 1-D (`[N, C, L]`) through its 2-D form, 2-D directly.
    pub(super) fn conv(&mut self, cx: &NodeCx) -> R<()> {
        if self.rank_of(cx, 0) == Some(3) {
            return self.via_2d(cx, Self::conv2d);
        }
        self.conv2d(cx)
    }

    fn conv2d(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let w = self.operand(cx, 1)?;
        let xs = self.shape_of(x);
        let ws = self.shape_of(w);
        if xs.len() != 4 || ws.len() != 4 {
            return Err(Failure::Unsupported(cx.err(format!(
                "only 1-D and 2-D convolution are supported (input rank {})",
                xs.len()
            ))));
        }
        let k = [ws[2].known().unwrap_or(1), ws[3].known().unwrap_or(1)];
        cx.check_kernel_shape(k)?;
        let strides = cx.pair("strides", 1, 1)?;
        let dilations = cx.pair("dilations", 1, 1)?;
        let group = cx.int_or("group", 1)?;
        if group < 1 {
            return Err(cx.attr_err("group", format!("{group} must be >= 1")).into());
        }
        let eff = window_extents(cx, k, dilations)?;
        let pads = self.resolve_pads(cx, [xs[2].known(), xs[3].known()], eff, strides)?;
        let mut ins = vec![x, w];
        if cx.input(2).is_some() {
            ins.push(self.operand(cx, 2)?);
        }
        self.add(
            cx,
            Op::Conv2d(Conv2dAttrs {
                strides,
                pads,
                dilations,
                group: group as u64,
                act: None,
                residual: false,
                gated: false,
                pool: false,
            }),
            &ins,
        )
    }

    /// ConvTranspose: 1-D (`[N, C, L]`) through its 2-D form, 2-D directly.
    pub(super) fn conv_transpose(&mut self, cx: &NodeCx) -> R<()> {
        if self.rank_of(cx, 0) == Some(3) {
            return self.via_2d(cx, Self::conv_transpose2d);
        }
        self.conv_transpose2d(cx)
    }

    fn conv_transpose2d(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let w = self.operand(cx, 1)?;
        let (xs, ws) = (self.shape_of(x), self.shape_of(w));
        if xs.len() != 4 || ws.len() != 4 {
            return Err(unsupported(
                cx,
                format!(
                    "only 1-D and 2-D transposed convolution are supported (input rank {})",
                    xs.len()
                ),
            ));
        }
        let k = match (ws[2].known(), ws[3].known()) {
            (Some(a), Some(b)) => [a, b],
            _ => return Err(cx.err("kernel extents must be known").into()),
        };
        cx.check_kernel_shape(k)?;
        let strides = cx.pair("strides", 1, 1)?;
        let dilations = cx.pair("dilations", 1, 1)?;
        let mut output_padding = cx.pair("output_padding", 0, 0)?;
        let group = cx.int_or("group", 1)?;
        if group < 1 {
            return Err(cx.attr_err("group", format!("{group} must be >= 1")).into());
        }
        // a symbolic extent counts as 0 here: only explicit output_shape needs its value
        // (SAME's pads do not depend on it), and that case is refused below
        let inp = [xs[2].known(), xs[3].known()];
        // every factor is at most MAX_ELEMENTS (2^32), so these fit in i128
        let full = |i: usize, op: &[u64; 2]| {
            i128::from(strides[i]) * (i128::from(inp[i].unwrap_or(0)) - 1)
                + i128::from(op[i])
                + i128::from(dilations[i]) * (i128::from(k[i]) - 1)
                + 1
        };
        let auto_pad = cx.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
        let out_shape: Option<[i128; 2]> = match cx.ints("output_shape")? {
            Some(_) if inp.contains(&None) => {
                return Err(unsupported(
                    cx,
                    "output_shape with symbolic spatial extents is not supported",
                ))
            }
            Some(v) if v.len() >= 2 && v[v.len() - 2..].iter().all(|&x| in_range(x, 1)) => {
                Some([v[v.len() - 2].into(), v[v.len() - 1].into()])
            }
            Some(v) => {
                return Err(cx
                    .attr_err(
                        "output_shape",
                        format!(
                            "{v:?} needs the spatial extents, each in 1..={}",
                            secc_ir::MAX_ELEMENTS
                        ),
                    )
                    .into())
            }
            None if auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER" => Some([
                i128::from(inp[0].unwrap_or(0)) * i128::from(strides[0]),
                i128::from(inp[1].unwrap_or(0)) * i128::from(strides[1]),
            ]),
            None => None,
        };
        let pads = match out_shape {
            Some(o) => {
                let mut p = [0u64; 4];
                for i in 0..2 {
                    let total = full(i, &output_padding) - o[i];
                    if total < 0 {
                        // a larger requested output extends the end (bias only there);
                        // the type rule bounds the result
                        output_padding[i] = u64::try_from(i128::from(output_padding[i]) - total)
                            .unwrap_or(u64::MAX);
                        continue;
                    }
                    let total = u64::try_from(total).unwrap_or(u64::MAX);
                    let (half, rest) = (total / 2, total - total / 2);
                    if auto_pad == "SAME_UPPER" {
                        p[i] = half;
                        p[i + 2] = rest;
                    } else {
                        p[i] = rest;
                        p[i + 2] = half;
                    }
                }
                p
            }
            None => match (auto_pad.as_str(), cx.ints("pads")?) {
                ("VALID", _) | ("NOTSET", None) => [0; 4],
                ("NOTSET", Some(_)) => cx.pads4()?.unwrap_or([0; 4]),
                (other, _) => {
                    return Err(cx
                        .attr_err("auto_pad", format!("{other:?} is not valid"))
                        .into())
                }
            },
        };
        let mut ins = vec![x, w];
        if cx.input(2).is_some() {
            ins.push(self.operand(cx, 2)?);
        }
        self.add(
            cx,
            Op::ConvTranspose2d(ConvTransposeAttrs {
                strides,
                pads,
                dilations,
                output_padding,
                group: group as u64,
            }),
            &ins,
        )
    }

    /// Explicit `[top, left, bottom, right]` pads from `pads`/`auto_pad` for a window with
    /// effective extents `eff` and `strides` over input extents `inp`.
    pub(super) fn resolve_pads(
        &self,
        cx: &NodeCx,
        inp: [Option<u64>; 2],
        eff: [u64; 2],
        strides: [u64; 2],
    ) -> R<[u64; 4]> {
        let auto_pad = cx.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
        Ok(match auto_pad.as_str() {
            "NOTSET" => cx.pads4()?.unwrap_or([0; 4]),
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = [0u64; 4];
                for i in 0..2 {
                    let inp =
                        inp[i].ok_or_else(|| cx.err("SAME padding needs known spatial extents"))?;
                    let out = inp.div_ceil(strides[i]);
                    // out - 1 <= inp / stride, so this stays near inp + eff (both bounded)
                    let total = ((out - 1) * strides[i] + eff[i]).saturating_sub(inp);
                    let (small, big) = (total / 2, total - total / 2);
                    if auto_pad == "SAME_UPPER" {
                        p[i] = small;
                        p[i + 2] = big;
                    } else {
                        p[i] = big;
                        p[i + 2] = small;
                    }
                }
                p
            }
            other => {
                return Err(cx
                    .attr_err("auto_pad", format!("unknown value {other:?}"))
                    .into())
            }
        })
    }

    /// A 1-D Conv, ConvTranspose, MaxPool or AveragePool (`[N, C, L]`) as its 2-D form over
    /// `[N, C, 1, L]`: the node is re-read with every spatial attribute given a leading
    /// height entry (kernel 1, stride 1, dilation 1, no padding), its data and weight
    /// operands reshaped, and the result reshaped back.
    pub(super) fn via_2d(&mut self, cx: &NodeCx, run: fn(&mut Self, &NodeCx) -> R<()>) -> R<()> {
        let mut node = cx.node.clone();
        // checked here so errors show the 1-D values the model wrote
        for a in &node.attribute {
            let min = match a.name.as_str() {
                "kernel_shape" | "strides" | "dilations" | "output_shape" => 1,
                "pads" | "output_padding" => 0,
                _ => continue,
            };
            if !a.ints.iter().all(|&x| in_range(x, min)) {
                return Err(cx
                    .attr_err(
                        &a.name,
                        format!(
                            "{:?} must be values in {min}..={}",
                            a.ints,
                            secc_ir::MAX_ELEMENTS
                        ),
                    )
                    .into());
            }
        }
        for a in node.attribute.iter_mut() {
            let lead: &[i64] = match a.name.as_str() {
                "kernel_shape" | "strides" | "dilations" => &[1],
                "output_padding" => &[0],
                "output_shape" => &[1],
                "pads" if a.ints.len() == 2 => {
                    a.ints = vec![0, a.ints[0], 0, a.ints[1]];
                    continue;
                }
                _ => continue,
            };
            if a.ints.len() == 1 {
                a.ints.insert(0, lead[0]);
            }
        }
        let weights = matches!(cx.op(), "Conv" | "ConvTranspose");
        for i in 0..if weights { 2 } else { 1 } {
            let v = self.operand(cx, i)?;
            let mut s = self.shape_of(v);
            if s.len() != 3 {
                return Err(cx
                    .err(format!(
                        "input {i} must have rank 3 for a 1-D op, got {}",
                        s.len()
                    ))
                    .into());
            }
            s.insert(2, Dim::Known(1));
            let v4 = self.node_at(cx, Op::Reshape { shape: s }, &[v])?;
            let name = format!("{}::2d{i}", cx.node.input[i]);
            self.vals.insert(name.clone(), v4);
            node.input[i] = name;
        }
        let out = Self::out_name(cx)?;
        let out4 = format!("{out}::2d");
        node.output[0] = out4.clone();
        // MaxPool's Indices: [N, C, 1, L] flattened is [N, C, L] flattened
        let indices = cx.node.output.get(1).filter(|s| !s.is_empty()).cloned();
        if let Some(i) = &indices {
            node.output[1] = format!("{i}::2d");
        }
        let cx2 = NodeCx {
            node: &node,
            name: cx.name.clone(),
        };
        run(self, &cx2)?;
        if let Some(i) = indices {
            let v4 = self.vals[&format!("{i}::2d")];
            let mut s = self.shape_of(v4);
            s.remove(2);
            let v = self.node_at(cx, Op::Reshape { shape: s }, &[v4])?;
            self.vals.insert(i, v);
        }
        let y4 = self.vals[&out4];
        let mut s = self.shape_of(y4);
        s.remove(2);
        self.add(cx, Op::Reshape { shape: s }, &[y4])
    }
}
