//! Resize (ONNX `Resize`/`Upsample`) attributes and the output-to-input coordinate map. The
//! map is the spec's formula, computed in f32 exactly as ONNX Runtime does; the interpreter
//! and, for known extents, the generated kernel read their source taps from it (for
//! symbolic extents the kernel evaluates the same f32 operations at run time).
use crate::types::Dim;

/// ONNX `coordinate_transformation_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordMode {
    /// `(x + 0.5) / scale - 0.5`
    HalfPixel,
    /// half_pixel, re-centred when the output was rounded (opset 19)
    HalfPixelSymmetric,
    /// half_pixel, but 0 when the output extent is 1
    PytorchHalfPixel,
    /// `x * (in - 1) / (out - 1)`
    AlignCorners,
    /// `x / scale`
    Asymmetric,
    /// `(x + 0.5) / scale`
    TfHalfPixelForNn,
}

/// ONNX `nearest_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NearestMode {
    /// round, halves down
    RoundPreferFloor,
    /// round, halves up
    RoundPreferCeil,
    /// floor
    Floor,
    /// ceil
    Ceil,
}

/// Interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// nearest neighbour with a rounding rule
    Nearest(NearestMode),
    /// (bi)linear
    Linear,
}

/// Resize of the two spatial axes of an NCHW tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ResizeAttrs {
    /// interpolation
    pub mode: ResizeMode,
    /// coordinate transform
    pub coord: CoordMode,
    /// scales `[h, w]` used by the coordinate transform (`out / in` when sizes were given)
    pub scales: [f32; 2],
    /// output extents `[h, w]` (symbolic when the input's are)
    pub sizes: [Dim; 2],
    /// the spec's `length_resized` `[h, w]`: `in * scale` before rounding when scales were
    /// given (align_corners and pytorch_half_pixel divide by it), else the output extent;
    /// `None` for a symbolic input: `in * scale` at run time
    pub lengths: [Option<f32>; 2],
}

/// One output coordinate's source: `(1 - w) * in[i0] + w * in[i1]` (nearest: `i0`, `w = 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tap {
    /// first source index
    pub i0: u64,
    /// second source index
    pub i1: u64,
    /// weight of `i1`
    pub w: f32,
}

impl ResizeAttrs {
    /// `length_resized` of axis `axis` for an input extent of `inl`.
    pub fn length(&self, axis: usize, inl: f32) -> f32 {
        self.lengths[axis].unwrap_or(inl * self.scales[axis])
    }

    /// Source taps of every output coordinate along spatial axis `axis` (0 = H, 1 = W),
    /// from an input extent `in_len` to `out_len`.
    pub fn taps(&self, axis: usize, in_len: u64, out_len: u64) -> Vec<Tap> {
        let s = self.scales[axis];
        let (inl, outl) = (in_len as f32, out_len as f32);
        let len = self.length(axis, inl);
        let last = in_len.saturating_sub(1);
        (0..out_len)
            .map(|x| {
                let xf = x as f32;
                let orig = match self.coord {
                    CoordMode::HalfPixel => (xf + 0.5) / s - 0.5,
                    CoordMode::HalfPixelSymmetric => {
                        let adj = outl / (s * inl);
                        let offset = inl / 2.0 * (1.0 - adj);
                        offset + (xf + 0.5) / s - 0.5
                    }
                    CoordMode::PytorchHalfPixel => {
                        if len > 1.0 {
                            (xf + 0.5) / s - 0.5
                        } else {
                            0.0
                        }
                    }
                    CoordMode::AlignCorners => {
                        if out_len == 1 {
                            0.0
                        } else {
                            xf * (inl - 1.0) / (len - 1.0)
                        }
                    }
                    CoordMode::Asymmetric => xf / s,
                    CoordMode::TfHalfPixelForNn => (xf + 0.5) / s,
                };
                match self.mode {
                    ResizeMode::Nearest(m) => {
                        let r = match m {
                            NearestMode::RoundPreferFloor => {
                                if orig == orig.floor() + 0.5 {
                                    orig.floor()
                                } else {
                                    orig.round()
                                }
                            }
                            NearestMode::RoundPreferCeil => {
                                if orig == orig.floor() + 0.5 {
                                    orig.ceil()
                                } else {
                                    orig.round()
                                }
                            }
                            NearestMode::Floor => orig.floor(),
                            NearestMode::Ceil => orig.ceil(),
                        };
                        let i = (r.max(0.0) as u64).min(last);
                        Tap {
                            i0: i,
                            i1: i,
                            w: 0.0,
                        }
                    }
                    ResizeMode::Linear => {
                        let c = orig.clamp(0.0, last as f32);
                        let i0 = (c as u64).min(last);
                        let i1 = (i0 + 1).min(last);
                        let w = if i0 == i1 { 0.0 } else { c - i0 as f32 };
                        Tap { i0, i1, w }
                    }
                }
            })
            .collect()
    }

    /// Attributes for the textual IR, sorted by key (`names`: the graph's symbols).
    pub fn attrs(&self, names: &[String]) -> Vec<(&'static str, String)> {
        let coord = match self.coord {
            CoordMode::HalfPixel => "half_pixel",
            CoordMode::HalfPixelSymmetric => "half_pixel_symmetric",
            CoordMode::PytorchHalfPixel => "pytorch_half_pixel",
            CoordMode::AlignCorners => "align_corners",
            CoordMode::Asymmetric => "asymmetric",
            CoordMode::TfHalfPixelForNn => "tf_half_pixel_for_nn",
        };
        let mode = match self.mode {
            ResizeMode::Linear => "linear",
            ResizeMode::Nearest(NearestMode::RoundPreferFloor) => "nearest(round_prefer_floor)",
            ResizeMode::Nearest(NearestMode::RoundPreferCeil) => "nearest(round_prefer_ceil)",
            ResizeMode::Nearest(NearestMode::Floor) => "nearest(floor)",
            ResizeMode::Nearest(NearestMode::Ceil) => "nearest(ceil)",
        };
        let len = |l: Option<f32>| l.map_or_else(|| "in*scale".to_string(), |v| format!("{v:?}"));
        vec![
            ("coord", coord.into()),
            (
                "lengths",
                format!("[{},{}]", len(self.lengths[0]), len(self.lengths[1])),
            ),
            ("mode", mode.into()),
            (
                "scales",
                format!("[{:?},{:?}]", self.scales[0], self.scales[1]),
            ),
            (
                "sizes",
                format!(
                    "[{},{}]",
                    self.sizes[0].display(names),
                    self.sizes[1].display(names)
                ),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(mode: ResizeMode, coord: CoordMode, s: f32, inl: u64, outl: u64) -> Vec<Tap> {
        ResizeAttrs {
            mode,
            coord,
            scales: [s, s],
            sizes: [Dim::Known(outl); 2],
            lengths: [Some(outl as f32); 2],
        }
        .taps(0, inl, outl)
    }

    #[test]
    fn nearest_asymmetric_floor_doubles() {
        let t = at(
            ResizeMode::Nearest(NearestMode::Floor),
            CoordMode::Asymmetric,
            2.0,
            3,
            6,
        );
        let i: Vec<u64> = t.iter().map(|t| t.i0).collect();
        assert_eq!(i, [0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn linear_half_pixel_clamps_and_weights() {
        let t = at(ResizeMode::Linear, CoordMode::HalfPixel, 2.0, 2, 4);
        // orig = -0.25, 0.25, 0.75, 1.25 -> clamp [0, 1]
        assert_eq!(
            t[0],
            Tap {
                i0: 0,
                i1: 1,
                w: 0.0
            }
        );
        assert_eq!(
            t[1],
            Tap {
                i0: 0,
                i1: 1,
                w: 0.25
            }
        );
        assert_eq!(
            t[2],
            Tap {
                i0: 0,
                i1: 1,
                w: 0.75
            }
        );
        assert_eq!(
            t[3],
            Tap {
                i0: 1,
                i1: 1,
                w: 0.0
            }
        );
    }

    #[test]
    fn align_corners_hits_both_ends() {
        let t = at(ResizeMode::Linear, CoordMode::AlignCorners, 2.5, 3, 5);
        assert_eq!((t[0].i0, t[0].w), (0, 0.0));
        assert_eq!((t[2].i0, t[2].w), (1, 0.0));
        assert_eq!(t[4].i0, 2);
    }
}
