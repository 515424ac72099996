//! The importer of Resize (opset 10+) and Upsample (opset 7-9): the two spatial axes of an
//! NCHW input, scaled or sized. Per axis the IR keeps the coordinate scale and the output
//! extent (an expression when the input's is symbolic: `floor(H * s)` exactly, or a sizes
//! input that is a constant multiple or fraction of the input's extent).
use super::shape::IV;
use super::{unsupported, Importer, R};
use crate::attrs::NodeCx;
use secc_ir::{CoordMode, Dim, NearestMode, Op, ResizeAttrs, ResizeMode};

/// Per input axis (all four): the scale, or `None` where a size was given instead; the
/// output extent where a size was given.
type Targets = ([Option<f32>; 4], [Option<Dim>; 4]);

impl Importer<'_> {
    /// Resize and Upsample of the two spatial axes of an NCHW input.
    pub(super) fn resize(&mut self, cx: &NodeCx) -> R<()> {
        let x = self.operand(cx, 0)?;
        let xs = self.shape_of(x);
        let Ok(xs) = <[Dim; 4]>::try_from(xs.as_slice()) else {
            return Err(unsupported(
                cx,
                format!("only 4-D NCHW inputs are supported (rank {})", xs.len()),
            ));
        };
        let legacy = cx.op() == "Upsample" || self.opset < 11;
        let linear = match cx.string("mode")?.as_deref().unwrap_or("nearest") {
            "nearest" => false,
            "linear" | "bilinear" => true,
            other => {
                return Err(unsupported(
                    cx,
                    format!("mode {other:?} is not supported (nearest and linear are)"),
                ))
            }
        };
        let (scales4, sizes4) = if legacy {
            self.legacy_scales(cx)?
        } else {
            self.resize_targets(cx, &xs)?
        };
        // batch and channels stay as they are
        for a in 0..2 {
            let same = match (scales4[a], sizes4[a]) {
                (Some(s), _) => s == 1.0,
                (None, Some(d)) => d == xs[a],
                (None, None) => true,
            };
            if !same {
                return Err(unsupported(
                    cx,
                    format!("resizing axis {a} (batch or channels) is not supported"),
                ));
            }
        }
        let mut attrs = ResizeAttrs {
            mode: ResizeMode::Linear,
            coord: coord_mode(cx, legacy)?,
            scales: [1.0; 2],
            sizes: [Dim::Known(1); 2],
            lengths: [None; 2],
        };
        for i in 0..2 {
            self.spatial_axis(
                cx,
                &mut attrs,
                i,
                xs[2 + i],
                (scales4[2 + i], sizes4[2 + i]),
            )?;
        }
        if cx.int_or("antialias", 0)? != 0 && linear && attrs.scales.iter().any(|&s| s < 1.0) {
            return Err(unsupported(cx, "antialiased downscaling is not supported"));
        }
        attrs.mode = resize_mode(cx, linear, legacy, attrs.scales)?;
        if attrs.sizes.contains(&Dim::Known(0)) {
            return Err(unsupported(cx, "an empty output is not supported"));
        }
        self.add(cx, Op::Resize(attrs), &[x])
    }

    /// Upsample's and opset-10 Resize's four scales (an attribute before opset 9, an input
    /// after).
    fn legacy_scales(&self, cx: &NodeCx) -> R<Targets> {
        let sc = if cx.op() == "Upsample" && self.opset < 9 {
            cx.floats("scales")?
                .ok_or_else(|| cx.attr_err("scales", "is required"))?
        } else {
            self.const_floats(cx, 1, "scales")?
                .ok_or_else(|| cx.err("input 1 (scales) is missing"))?
        };
        let Ok(sc) = <[f32; 4]>::try_from(sc.as_slice()) else {
            return Err(cx.err(format!("{} scales for rank 4", sc.len())).into());
        };
        Ok((sc.map(Some), [None; 4]))
    }

    /// Resize's scales (input 2) or sizes (input 3), over `axes` (default all four).
    fn resize_targets(&self, cx: &NodeCx, xs: &[Dim; 4]) -> R<Targets> {
        let axes: Vec<usize> = match cx.ints("axes")? {
            Some(a) => a
                .iter()
                .map(|&a| cx.axis("axes", a, 4))
                .collect::<Result<_, _>>()?,
            None => (0..4).collect(),
        };
        let scales = self
            .const_floats(cx, 2, "scales")?
            .filter(|s| !s.is_empty());
        let sizes: Option<Vec<IV>> = match cx.input(3) {
            Some(n) => match self.ints.get(n) {
                Some((_, d)) if !d.is_empty() => Some(d.clone()),
                Some(_) => None,
                None => {
                    return Err(unsupported(
                        cx,
                        "input 3 (sizes) must be computable at compile time",
                    ))
                }
            },
            None => None,
        };
        match (scales, sizes) {
            (Some(sc), None) => {
                if sc.len() != axes.len() {
                    return Err(cx
                        .err(format!("{} scales for {} axes", sc.len(), axes.len()))
                        .into());
                }
                let mut sc4 = [Some(1.0f32); 4];
                for (k, &a) in axes.iter().enumerate() {
                    sc4[a] = Some(sc[k]);
                }
                Ok((sc4, [None; 4]))
            }
            (None, Some(sz)) => sized_targets(cx, xs, &axes, &sz),
            (Some(_), Some(_)) => Err(cx.err("only one of scales and sizes may be given").into()),
            (None, None) => Err(cx.err("needs scales or sizes").into()),
        }
    }

    /// The scale, output extent and (known) output length of spatial axis `i` of `attrs`
    /// for an input extent `inl` and the axis's scale or size.
    fn spatial_axis(
        &self,
        cx: &NodeCx,
        attrs: &mut ResizeAttrs,
        i: usize,
        inl: Dim,
        target: (Option<f32>, Option<Dim>),
    ) -> R<()> {
        let names = &self.g.sym_names;
        match target {
            (scale, Some(d)) => {
                attrs.sizes[i] = d;
                attrs.lengths[i] = d.known().map(|o| o as f32);
                attrs.scales[i] = match (scale, d.known(), inl.known()) {
                    (Some(s), ..) => s,
                    (None, Some(o), Some(n)) => o as f32 / n as f32,
                    // a symbolic extent: the coordinate scale out / in must be a constant
                    (None, ..) => constant_ratio(d, inl).ok_or_else(|| {
                        unsupported(
                            cx,
                            format!(
                                "output size {} is not a constant multiple or fraction of the input's {}",
                                d.display(names),
                                inl.display(names)
                            ),
                        )
                    })?,
                };
            }
            (Some(s), None) => {
                if s.is_nan() || s <= 0.0 || s.is_infinite() {
                    return Err(cx.err(format!("scale {s} must be positive")).into());
                }
                attrs.scales[i] = s;
                let Some(n) = inl.known() else {
                    attrs.sizes[i] = scaled_extent(inl, s).ok_or_else(|| {
                        unsupported(
                            cx,
                            format!("scale {s} of a symbolic extent needs a binary fraction of at most 32 bits after the point"),
                        )
                    })?;
                    return Ok(());
                };
                let len = n as f32 * s;
                if len > secc_ir::MAX_ELEMENTS as f32 {
                    return Err(cx
                        .err(format!(
                            "scale {s} makes axis {} {len} long, beyond the size limit {}",
                            2 + i,
                            secc_ir::MAX_ELEMENTS
                        ))
                        .into());
                }
                attrs.lengths[i] = Some(len);
                attrs.sizes[i] = Dim::Known(len.floor() as u64);
            }
            (None, None) => unreachable!("every axis has a scale or a size"),
        }
        Ok(())
    }
}

/// Resize's sizes over `axes`, with `keep_aspect_ratio_policy` (opset 18; `stretch` before).
fn sized_targets(cx: &NodeCx, xs: &[Dim; 4], axes: &[usize], sz: &[IV]) -> R<Targets> {
    if sz.len() != axes.len() {
        return Err(cx
            .err(format!("{} sizes for {} axes", sz.len(), axes.len()))
            .into());
    }
    let policy = cx
        .string("keep_aspect_ratio_policy")?
        .unwrap_or_else(|| "stretch".into());
    let mut sc4 = [Some(1.0f32); 4];
    let mut sz4: [Option<Dim>; 4] = [None; 4];
    let mut ratio: Option<f32> = None;
    for (k, &a) in axes.iter().enumerate() {
        let d = match sz[k] {
            IV::K(v) if v >= 1 => Dim::Known(v as u64),
            IV::S(d) => d,
            IV::K(v) => return Err(cx.err(format!("output size {v} must be >= 1")).into()),
        };
        sz4[a] = Some(d);
        sc4[a] = None;
        if let (Some(o), Some(i)) = (d.known(), xs[a].known()) {
            let r = o as f32 / i as f32;
            ratio = Some(match (policy.as_str(), ratio) {
                (_, None) => r,
                ("not_larger", Some(p)) => p.min(r),
                (_, Some(p)) => p.max(r),
            });
        }
    }
    match policy.as_str() {
        "stretch" => {}
        "not_larger" | "not_smaller" => {
            let r = ratio.unwrap_or(1.0);
            for &a in axes {
                let i = xs[a].known().ok_or_else(|| {
                    unsupported(cx, "keep_aspect_ratio_policy needs known extents")
                })?;
                sc4[a] = Some(r);
                sz4[a] = Some(Dim::Known((r * i as f32).round() as u64));
            }
        }
        other => {
            return Err(cx
                .attr_err(
                    "keep_aspect_ratio_policy",
                    format!("{other:?} is not valid"),
                )
                .into())
        }
    }
    Ok((sc4, sz4))
}

/// `coordinate_transformation_mode` (asymmetric before opset 11).
fn coord_mode(cx: &NodeCx, legacy: bool) -> R<CoordMode> {
    if legacy {
        return Ok(CoordMode::Asymmetric);
    }
    Ok(
        match cx
            .string("coordinate_transformation_mode")?
            .as_deref()
            .unwrap_or("half_pixel")
        {
            "half_pixel" => CoordMode::HalfPixel,
            "half_pixel_symmetric" => CoordMode::HalfPixelSymmetric,
            "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
            "align_corners" => CoordMode::AlignCorners,
            "asymmetric" => CoordMode::Asymmetric,
            "tf_half_pixel_for_nn" => CoordMode::TfHalfPixelForNn,
            other => {
                return Err(unsupported(
                    cx,
                    format!("coordinate_transformation_mode {other:?} is not supported"),
                ))
            }
        },
    )
}

/// Linear, or nearest with its rounding: `nearest_mode` from opset 11; before, ONNX
/// Runtime's rule (floor when upsampling, ceil when shrinking).
fn resize_mode(cx: &NodeCx, linear: bool, legacy: bool, scales: [f32; 2]) -> R<ResizeMode> {
    if linear {
        return Ok(ResizeMode::Linear);
    }
    if legacy {
        return if scales.iter().all(|&s| s >= 1.0) {
            Ok(ResizeMode::Nearest(NearestMode::Floor))
        } else if scales.iter().all(|&s| s < 1.0) {
            Ok(ResizeMode::Nearest(NearestMode::Ceil))
        } else {
            Err(unsupported(
                cx,
                "nearest resize that grows one axis and shrinks the other is not supported before opset 11",
            ))
        };
    }
    let m = match cx
        .string("nearest_mode")?
        .as_deref()
        .unwrap_or("round_prefer_floor")
    {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        other => {
            return Err(cx
                .attr_err("nearest_mode", format!("{other:?} is not valid"))
                .into())
        }
    };
    Ok(ResizeMode::Nearest(m))
}

/// `out / in` as an f32 when it is one constant for every binding (`out = k * in` or
/// `in = k * out`); the f32 ONNX Runtime computes from the two extents is then the same.
fn constant_ratio(out: Dim, inl: Dim) -> Option<f32> {
    if let Some(k) = out.checked_div(inl).and_then(Dim::known) {
        return Some(k as f32);
    }
    let k = inl.checked_div(out).and_then(Dim::known)?;
    Some(1.0 / k as f32)
}

/// `floor(in * s)` of a symbolic extent, exactly: the f32 `s` is `num / 2^k`. (ONNX
/// Runtime rounds the product to f32 before the floor; the two differ only when the exact
/// product lies within half an f32 step below an integer.)
fn scaled_extent(inl: Dim, s: f32) -> Option<Dim> {
    let mut v = f64::from(s);
    let mut k = 0u32;
    while v.fract() != 0.0 {
        v *= 2.0;
        k += 1;
        if k > 32 {
            return None;
        }
    }
    if v > (1u64 << 40) as f64 {
        return None;
    }
    inl.checked_mul(Dim::Known(v as u64))?.div_floor(1u64 << k)
}

#[cfg(test)]
mod tests {
    use super::{constant_ratio, scaled_extent};
    use secc_ir::{Dim, SymId};

    #[test]
    fn symbolic_resize_extents_are_exact() {
        let h = Dim::sym(SymId(0));
        let at = |d: Dim, v: u64| d.eval(&[v]).unwrap();
        let twice = scaled_extent(h, 2.0).unwrap();
        let half = scaled_extent(h, 0.5).unwrap();
        let odd = scaled_extent(h, 1.25).unwrap();
        for v in [1u64, 2, 7, 64, 333] {
            assert_eq!(at(twice, v), 2 * v);
            assert_eq!(at(half, v), v / 2);
            assert_eq!(at(odd, v), (v * 5) / 4);
        }
        // f32 0.1 is 13421773 / 2^27, a hair above 0.1: floor(10 * s) = 1, as in f32
        assert_eq!(at(scaled_extent(h, 0.1).unwrap(), 10), 1);
        // a scale needing more than 32 bits after the point is refused
        assert!(scaled_extent(h, 1e-12).is_none());
        assert_eq!(constant_ratio(twice, h), Some(2.0));
        assert_eq!(constant_ratio(h, twice), Some(0.5));
        assert_eq!(constant_ratio(odd, h), None);
    }
}
