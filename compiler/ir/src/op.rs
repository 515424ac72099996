//! The closed op set and its typed attributes; the per-op type rules live in
//! [`crate::infer`].
use crate::constraint::Constraint;
use crate::error::IrError;
use crate::graph::ConstId;
use crate::resize::ResizeAttrs;
use crate::types::{DType, Dim, Layout, Shape, TensorType};

/// Attributes of a 2-D convolution (NCHW, weights OIHW). Pads are explicit
/// `[top, left, bottom, right]`; `auto_pad` is resolved by the importer.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2dAttrs {
    /// strides `[h, w]`
    pub strides: [u64; 2],
    /// pads `[top, left, bottom, right]`
    pub pads: [u64; 4],
    /// dilations `[h, w]`
    pub dilations: [u64; 2],
    /// number of groups
    pub group: u64,
    /// activation applied to every output element (fused by `fuse-conv-act`)
    pub act: Option<Activation>,
    /// a fourth operand of the output's shape is added before the activation (a residual
    /// `add` fused by the CPU lowering `fuse-conv-residual`; the bias is then explicit)
    pub residual: bool,
    /// the input is scaled per image and input channel by a gate operand `[N, C]` (after
    /// the bias, before the residual; the bias is then explicit): an SE block's
    /// `x * gate` folded into the convolution that consumes it (`se-fuse`)
    pub gated: bool,
    /// the convolution also yields the channel means of its result, `f32[N, O]` (plain),
    /// as its second result: an SE block's pool done by the convolution that produces the
    /// block's input, while its outputs are in cache (`fuse-se-pool`)
    pub pool: bool,
}

impl Conv2dAttrs {
    /// A 1x1 dense convolution: stride 1, no pads, no epilogue or extra operands.
    pub fn pointwise() -> Self {
        Conv2dAttrs {
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
            group: 1,
            act: None,
            residual: false,
            gated: false,
            pool: false,
        }
    }
    /// The operand slot of the gate `[N, C]`, if the input is gated.
    pub fn gate_slot(&self) -> Option<usize> {
        self.gated.then_some(3)
    }
    /// The operand slot of the residual, if one is added.
    pub fn residual_slot(&self) -> Option<usize> {
        self.residual.then_some(3 + usize::from(self.gated))
    }
}

/// Attributes of a 2-D transposed convolution (NCHW, weights `[Cin, Cout/group, kh, kw]`).
/// Pads `[top, left, bottom, right]` are cropped from the full output; `output_shape` and
/// `auto_pad` are resolved into pads and `output_padding` by the importer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvTransposeAttrs {
    /// strides `[h, w]`
    pub strides: [u64; 2],
    /// pads `[top, left, bottom, right]`
    pub pads: [u64; 4],
    /// dilations `[h, w]`
    pub dilations: [u64; 2],
    /// extra rows/columns added at the bottom/right `[h, w]`
    pub output_padding: [u64; 2],
    /// number of groups
    pub group: u64,
}

impl ConvTransposeAttrs {
    /// Output extent along spatial axis `i` for input extent `input` and kernel extent `k`;
    /// `None` when the pads crop everything, or the extent overflows.
    pub fn out_extent(&self, i: usize, input: u64, k: u64) -> Option<u64> {
        let full = self.strides[i]
            .checked_mul(input.checked_sub(1)?)?
            .checked_add(self.output_padding[i])?
            .checked_add(dilated(k, self.dilations[i])?)?;
        full.checked_sub(self.pads[i].checked_add(self.pads[i + 2])?)
            .filter(|&v| v > 0)
    }
}

/// `d * (k - 1) + 1`: the extent a window of `k` taps at dilation `d` covers; `None` for an
/// empty window or on overflow.
pub fn dilated(k: u64, d: u64) -> Option<u64> {
    k.checked_sub(1)?.checked_mul(d)?.checked_add(1)
}

/// Attributes of a 2-D max or average pooling (NCHW). Pads are explicit
/// `[top, left, bottom, right]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolAttrs {
    /// max or average
    pub kind: PoolKind,
    /// window `[h, w]`
    pub kernel: [u64; 2],
    /// strides `[h, w]`
    pub strides: [u64; 2],
    /// pads `[top, left, bottom, right]`
    pub pads: [u64; 4],
    /// dilations `[h, w]`
    pub dilations: [u64; 2],
    /// output extent rounds up (a window starting in the bottom/right padding is dropped)
    pub ceil_mode: bool,
    /// average pooling divides by the window size including padding
    pub count_include_pad: bool,
}

/// Reductions other than the mean (which keeps its own op, `ReduceMean`, because SE
/// detection matches it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// sum
    Sum,
    /// maximum
    Max,
    /// minimum
    Min,
}

/// How `Pad` fills the border.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PadMode {
    /// a constant value
    Constant(f32),
    /// a value known only at run time: the one element of the second operand
    ConstantInput,
    /// mirror without repeating the edge element
    Reflect,
    /// repeat the edge element
    Edge,
}

/// One element of an int64 tensor known at compile time up to the symbols (a shape that a
/// model returns): a number, or a symbolic extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntElem {
    /// a known value
    Known(i64),
    /// a symbolic extent
    Dim(Dim),
}

impl IntElem {
    /// Value under a binding of symbols.
    pub fn eval(self, syms: &[u64]) -> Option<i64> {
        match self {
            IntElem::Known(v) => Some(v),
            IntElem::Dim(d) => d.eval(syms).and_then(|v| i64::try_from(v).ok()),
        }
    }
    /// Formats the element with the graph's symbol names.
    pub fn display(self, names: &[String]) -> String {
        match self {
            IntElem::Known(v) => v.to_string(),
            IntElem::Dim(d) => d.display(names),
        }
    }
}

/// Pooling reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// maximum
    Max,
    /// mean
    Avg,
}

impl PoolAttrs {
    /// Output extent along axis `i` (0 = H, 1 = W) for an input extent; `None` when the
    /// window does not fit or a size overflows.
    pub fn out_extent(&self, i: usize, input: u64) -> Option<u64> {
        let padded = input
            .checked_add(self.pads[i])?
            .checked_add(self.pads[i + 2])?;
        let eff = dilated(self.kernel[i], self.dilations[i])?;
        if padded < eff || self.strides[i] == 0 {
            return None;
        }
        let num = padded - eff;
        let mut out = if self.ceil_mode {
            num.div_ceil(self.strides[i])
        } else {
            num / self.strides[i]
        } + 1;
        // a last window that would start inside the end padding is dropped
        if self.ceil_mode && (out - 1).checked_mul(self.strides[i])? >= input + self.pads[i] {
            out -= 1;
        }
        Some(out)
    }
}

/// Attributes of `Gemm`: `alpha * op(A) @ op(B) + beta * C`.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmAttrs {
    /// scale of the product
    pub alpha: f32,
    /// scale of C
    pub beta: f32,
    /// A is transposed
    pub trans_a: bool,
    /// B is transposed
    pub trans_b: bool,
}

/// Element-wise binary ops with numpy broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
    /// min(a, b)
    Min,
    /// max(a, b)
    Max,
    /// a < 0 ? b * a : a (PRelu with slope b)
    PRelu,
    /// a ^ b
    Pow,
    /// 1.0 if a == b else 0.0 (booleans are carried as 0/1 floats between ops)
    Equal,
    /// 1.0 if a < b else 0.0
    Less,
    /// 1.0 if a > b else 0.0
    Greater,
}

impl BinaryOp {
    /// Mnemonic.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Min => "min",
            BinaryOp::Max => "max",
            BinaryOp::PRelu => "prelu",
            BinaryOp::Pow => "pow",
            BinaryOp::Equal => "equal",
            BinaryOp::Less => "less",
            BinaryOp::Greater => "greater",
        }
    }
    /// Scalar semantics (the reference).
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Min => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.min(b)
                }
            }
            BinaryOp::Max => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.max(b)
                }
            }
            BinaryOp::PRelu => {
                if a < 0.0 {
                    b * a
                } else {
                    a
                }
            }
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Equal => f32::from(u8::from(a == b)),
            BinaryOp::Less => f32::from(u8::from(a < b)),
            BinaryOp::Greater => f32::from(u8::from(a > b)),
        }
    }
}

/// Element-wise activations. Also used to describe the two activations inside an SE block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// 1 / (1 + exp(-x))
    Sigmoid,
    /// clamp(alpha * x + beta, 0, 1), alpha and beta kept exactly as given
    HardSigmoid {
        /// slope
        alpha: f32,
        /// offset
        beta: f32,
    },
    /// x * clamp(x / 6 + 1/2, 0, 1) (ONNX HardSwish: alpha = 1/6, beta = 0.5)
    HardSwish,
    /// x * sigmoid(x)
    Silu,
    /// clamp(x, min, max); a missing bound is infinite
    Clip {
        /// lower bound
        min: f32,
        /// upper bound
        max: f32,
    },
    /// x < 0 ? alpha * x : x
    LeakyRelu {
        /// negative slope
        alpha: f32,
    },
    /// x < 0 ? alpha * (exp(x) - 1) : x
    Elu {
        /// scale of the negative part
        alpha: f32,
    },
    /// tanh(x)
    Tanh,
    /// exp(x)
    Exp,
    /// natural logarithm
    Log,
    /// square root
    Sqrt,
    /// -x
    Neg,
    /// |x|
    Abs,
    /// the error function
    Erf,
    /// ln(1 + exp(x))
    Softplus,
    /// x / (1 + |x|)
    Softsign,
    /// gamma * (x > 0 ? x : alpha * (exp(x) - 1))
    Selu {
        /// scale of the negative part
        alpha: f32,
        /// overall scale
        gamma: f32,
    },
    /// max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
    Celu {
        /// shape
        alpha: f32,
    },
    /// x > alpha ? x : 0
    ThresholdedRelu {
        /// threshold
        alpha: f32,
    },
    /// x * tanh(softplus(x))
    Mish,
    /// x / 2 * (1 + erf(x / sqrt 2)), or the tanh approximation
    Gelu {
        /// `approximate = "tanh"`
        tanh: bool,
    },
    /// round up
    Ceil,
    /// round down
    Floor,
    /// round half to even
    Round,
    /// -1, 0 or 1
    Sign,
}

impl Activation {
    /// Mnemonic without attributes.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::HardSigmoid { .. } => "hard_sigmoid",
            Activation::HardSwish => "hard_swish",
            Activation::Silu => "silu",
            Activation::Clip { .. } => "clip",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Elu { .. } => "elu",
            Activation::Tanh => "tanh",
            Activation::Exp => "exp",
            Activation::Log => "log",
            Activation::Sqrt => "sqrt",
            Activation::Neg => "neg",
            Activation::Abs => "abs",
            Activation::Erf => "erf",
            Activation::Softplus => "softplus",
            Activation::Softsign => "softsign",
            Activation::Selu { .. } => "selu",
            Activation::Celu { .. } => "celu",
            Activation::ThresholdedRelu { .. } => "thresholded_relu",
            Activation::Mish => "mish",
            Activation::Gelu { tanh: false } => "gelu",
            Activation::Gelu { tanh: true } => "gelu_tanh",
            Activation::Ceil => "ceil",
            Activation::Floor => "floor",
            Activation::Round => "round",
            Activation::Sign => "sign",
        }
    }
    /// Attributes as sorted `key=value` pairs (floats in shortest round-trip form).
    pub fn attrs(self) -> Vec<(&'static str, String)> {
        match self {
            Activation::HardSigmoid { alpha, beta } => {
                vec![
                    ("alpha", format!("{alpha:?}")),
                    ("beta", format!("{beta:?}")),
                ]
            }
            Activation::Clip { min, max } => {
                vec![("max", format!("{max:?}")), ("min", format!("{min:?}"))]
            }
            Activation::LeakyRelu { alpha }
            | Activation::Elu { alpha }
            | Activation::Celu { alpha }
            | Activation::ThresholdedRelu { alpha } => {
                vec![("alpha", format!("{alpha:?}"))]
            }
            Activation::Selu { alpha, gamma } => vec![
                ("alpha", format!("{alpha:?}")),
                ("gamma", format!("{gamma:?}")),
            ],
            _ => vec![],
        }
    }
    /// `name` or `name(k=v,...)`, used inside SE attributes.
    pub fn spelled(self) -> String {
        let a = self.attrs();
        if a.is_empty() {
            self.name().to_string()
        } else {
            let kv: Vec<String> = a.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}({})", self.name(), kv.join(","))
        }
    }
    /// Scalar semantics (the reference), computed in f64 then rounded.
    pub fn apply(self, x: f32) -> f32 {
        let xd = x as f64;
        let r = match self {
            Activation::Relu => xd.max(0.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-xd).exp()),
            Activation::HardSigmoid { alpha, beta } => {
                (alpha as f64 * xd + beta as f64).clamp(0.0, 1.0)
            }
            Activation::HardSwish => xd * (xd / 6.0 + 0.5).clamp(0.0, 1.0),
            Activation::Silu => xd / (1.0 + (-xd).exp()),
            Activation::Clip { min, max } => xd.max(min as f64).min(max as f64),
            Activation::LeakyRelu { alpha } => {
                if xd < 0.0 {
                    alpha as f64 * xd
                } else {
                    xd
                }
            }
            Activation::Elu { alpha } => {
                if xd < 0.0 {
                    alpha as f64 * (xd.exp() - 1.0)
                } else {
                    xd
                }
            }
            Activation::Tanh => xd.tanh(),
            Activation::Exp => xd.exp(),
            Activation::Log => xd.ln(),
            Activation::Sqrt => xd.sqrt(),
            Activation::Neg => -xd,
            Activation::Abs => xd.abs(),
            Activation::Erf => erf(xd),
            Activation::Softplus => softplus(xd),
            Activation::Softsign => xd / (1.0 + xd.abs()),
            Activation::Selu { alpha, gamma } => {
                gamma as f64
                    * if xd > 0.0 {
                        xd
                    } else {
                        alpha as f64 * (xd.exp() - 1.0)
                    }
            }
            Activation::Celu { alpha } => {
                let a = alpha as f64;
                xd.max(0.0) + (a * ((xd / a).exp() - 1.0)).min(0.0)
            }
            Activation::ThresholdedRelu { alpha } => {
                if xd > alpha as f64 {
                    xd
                } else {
                    0.0
                }
            }
            Activation::Mish => xd * softplus(xd).tanh(),
            Activation::Gelu { tanh: false } => {
                0.5 * xd * (1.0 + erf(xd / std::f64::consts::SQRT_2))
            }
            Activation::Gelu { tanh: true } => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * xd * (1.0 + (c * (xd + 0.044715 * xd * xd * xd)).tanh())
            }
            Activation::Ceil => xd.ceil(),
            Activation::Floor => xd.floor(),
            Activation::Round => xd.round_ties_even(),
            Activation::Sign => {
                if xd > 0.0 {
                    1.0
                } else if xd < 0.0 {
                    -1.0
                } else {
                    xd
                }
            }
        };
        r as f32
    }
}

/// ln(1 + exp(x)) without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// erf in f64 (W. J. Cody's rational approximations are overkill for a reference; this is
/// the series / continued-fraction pair, accurate to ~1e-15 over the real line).
fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        // Maclaurin series
        let mut sum = a;
        let mut term = a;
        let x2 = a * a;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -x2 / n;
            let t = term / (2.0 * n + 1.0);
            sum += t;
            // `<=` so erf(0) (all terms 0) ends; the cap bounds |x| < 2.5 (~70 terms)
            if t.abs() <= 1e-17 * sum.abs() || n >= 200.0 {
                break;
            }
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // continued fraction for erfc, evaluated bottom-up
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (a + f);
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

/// Attributes of the fused squeeze-and-excitation op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeAttrs {
    /// activation between the two FC layers
    pub inner: Activation,
    /// gate activation applied to the second FC's output
    pub gate: Activation,
    /// a sixth operand (of x's shape and layout) is added to `x * gate`: the residual add
    /// of an SE-ResNet block, done while the scaled values are in registers
    pub residual: bool,
    /// activation applied last (after the residual add), if any
    pub act: Option<Activation>,
    /// a last operand holds x's channel means `[N, C]` (plain), computed by the
    /// convolution that produces x (`fuse-se-pool`): the block does not pool x itself
    pub pooled: bool,
}

impl SeAttrs {
    /// The operand slot of the residual, if one is added.
    pub fn residual_slot(&self) -> Option<usize> {
        self.residual.then_some(5)
    }
    /// The operand slot of x's channel means, if the producer pooled x.
    pub fn means_slot(&self) -> Option<usize> {
        self.pooled.then_some(5 + usize::from(self.residual))
    }
    /// Operands: x, the four FC weights, then a residual and x's means where present.
    pub fn operand_count(&self) -> usize {
        5 + usize::from(self.residual) + usize::from(self.pooled)
    }
}

/// Attributes of an SE block's gate step (`se_gate`): the pool, the two FC layers and
/// their activations, without the scale, which the consumer does (a gated convolution).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeGateAttrs {
    /// activation between the two FC layers
    pub inner: Activation,
    /// gate activation applied to the second FC's output
    pub gate: Activation,
}

/// One instruction of a fused element-wise program. Operand `i < n` is the node's input
/// `i`; operand `n + k` is the result of instruction `k`. The last result is the output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EwInstr {
    /// binary op on two operands
    Binary(BinaryOp, u16, u16),
    /// activation of one operand
    Act(Activation, u16),
    /// `c != 0 ? a : b`
    Where(u16, u16, u16),
}

impl EwInstr {
    /// Operand references.
    pub fn operands(&self) -> Vec<u16> {
        match *self {
            EwInstr::Binary(_, a, b) => vec![a, b],
            EwInstr::Act(_, a) => vec![a],
            EwInstr::Where(c, a, b) => vec![c, a, b],
        }
    }
    /// The same instruction with operands renamed by `f`.
    pub fn map(&self, f: impl Fn(u16) -> u16) -> EwInstr {
        match *self {
            EwInstr::Binary(op, a, b) => EwInstr::Binary(op, f(a), f(b)),
            EwInstr::Act(act, a) => EwInstr::Act(act, f(a)),
            EwInstr::Where(c, a, b) => EwInstr::Where(f(c), f(a), f(b)),
        }
    }
    /// Scalar semantics on register values.
    pub fn apply(&self, r: &[f32]) -> f32 {
        match *self {
            EwInstr::Binary(op, a, b) => op.apply(r[a as usize], r[b as usize]),
            EwInstr::Act(act, a) => act.apply(r[a as usize]),
            EwInstr::Where(c, a, b) => {
                if r[c as usize] != 0.0 {
                    r[a as usize]
                } else {
                    r[b as usize]
                }
            }
        }
    }
    fn spelled(&self) -> String {
        match *self {
            EwInstr::Binary(op, a, b) => format!("{}(%{a},%{b})", op.name()),
            EwInstr::Act(act, a) => format!("{}(%{a})", act.spelled()),
            EwInstr::Where(c, a, b) => format!("where(%{c},%{a},%{b})"),
        }
    }
}

/// The closed set of IR ops. Weights are `Const` nodes pointing into the graph's pool.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Graph input number `index` (its name lives in the graph).
    Input {
        /// position in the graph signature
        index: u32,
    },
    /// A constant from the graph's [`crate::ConstPool`].
    Const(ConstId),
    /// Copy (from ONNX Identity and inference-mode Dropout); removed by a pass.
    Identity,
    /// 2-D convolution: `(x, w[, b])`.
    Conv2d(Conv2dAttrs),
    /// 2-D transposed convolution: `(x, w[, b])`.
    ConvTranspose2d(ConvTransposeAttrs),
    /// General matrix multiply: `(a, b[, c])`.
    Gemm(GemmAttrs),
    /// Numpy matmul with batch broadcasting: `(a, b)`.
    MatMul,
    /// Broadcasting element-wise binary op.
    Binary(BinaryOp),
    /// Broadcasting select: `(cond, a, b)` -> `cond != 0 ? a : b`.
    Where,
    /// Broadcast of the operand to `shape` (ONNX Expand, with the output shape resolved).
    Expand {
        /// output shape
        shape: Shape,
    },
    /// Strided window: output index `i` on axis `d` reads input `starts[d] + i * steps[d]`.
    Slice {
        /// first input index per axis
        starts: Vec<u64>,
        /// step per axis (non-zero; negative walks backwards)
        steps: Vec<i64>,
        /// output shape
        shape: Shape,
    },
    /// Resize of the spatial axes of an NCHW tensor.
    Resize(ResizeAttrs),
    /// A chain of element-wise ops fused into one pass (`fuse-elementwise`), with numpy
    /// broadcasting of every input to the output.
    Elementwise {
        /// the program; its last instruction is the output
        prog: Vec<EwInstr>,
    },
    /// Element-wise activation.
    Act(Activation),
    /// Mean over the spatial axes of an NCHW tensor, keeping them as 1.
    GlobalAvgPool,
    /// Maximum over the spatial axes, keeping them as 1.
    GlobalMaxPool,
    /// Windowed 2-D max or average pooling.
    Pool2d(PoolAttrs),
    /// Where each window of a 2-D max pooling found its maximum (ONNX MaxPool's `Indices`),
    /// as an int64 index into the flattened input `[N, C, H, W]`: `(n*C + c)*H*W + h*W + w`,
    /// or `(n*C + c)*H*W + w*H + h` when `column_major`; the first maximum in window order
    /// wins; padding is never chosen.
    MaxPoolIndices {
        /// the pooling (`kind` is `Max`)
        pool: PoolAttrs,
        /// ONNX `storage_order = 1`
        column_major: bool,
    },
    /// An int64 tensor known at compile time up to the symbolic batch (ONNX `Shape`, `Size`
    /// and integer arithmetic on them, returned by the model): no operands.
    IntTensor {
        /// extents
        shape: Vec<u64>,
        /// row-major elements
        values: Vec<IntElem>,
    },
    /// Sum, maximum or minimum over sorted, normalised `axes`.
    Reduce {
        /// the reduction
        kind: ReduceKind,
        /// axes reduced, sorted, non-negative
        axes: Vec<usize>,
        /// keep reduced axes as extent 1
        keep_dims: bool,
    },
    /// Mean over sorted, normalised `axes`.
    ReduceMean {
        /// axes reduced, sorted, non-negative
        axes: Vec<usize>,
        /// keep reduced axes as extent 1
        keep_dims: bool,
    },
    /// Re-interpretation of the same data with another shape (Reshape, Flatten, Squeeze,
    /// Unsqueeze). The target shape is fully resolved.
    Reshape {
        /// output shape
        shape: Shape,
    },
    /// Padding: `pads[i] = (before, after)` elements on axis `i`.
    Pad {
        /// per-axis (before, after)
        pads: Vec<(u64, u64)>,
        /// fill mode
        mode: PadMode,
    },
    /// Concatenation of the operands along `axis`.
    Concat {
        /// axis (non-negative)
        axis: usize,
    },
    /// Permutation of the axes: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// the permutation
        perm: Vec<usize>,
    },
    /// Softmax along one axis.
    Softmax {
        /// axis (non-negative)
        axis: usize,
    },
    /// Fused SE block: `(x[N,C,H,W], w1[R,C], b1[R], w2[C,R], b2[C])` ->
    /// `x * gate(w2 @ inner(w1 @ mean_hw(x) + b1) + b2)`.
    SqueezeExcite(SeAttrs),
    /// An SE block's gate: `(x[N,C,H,W], w1[R,C], b1[R], w2[C,R], b2[C])` ->
    /// `gate(w2 @ inner(w1 @ mean_hw(x) + b1) + b2)` of shape `[N, C]` (plain), read by a
    /// gated convolution that scales its input with it.
    SeGate(SeGateAttrs),
    /// The same tensor in another memory layout (inserted by the layout pass; the identity
    /// for the interpreter, a copy with a different addressing for the code generator).
    Reorder {
        /// the layout of the result
        to: Layout,
    },
}

impl Op {
    /// Mnemonic used in the textual IR.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Const(_) => "const",
            Op::Identity => "identity",
            Op::Conv2d(_) => "conv2d",
            Op::ConvTranspose2d(_) => "conv_transpose2d",
            Op::Where => "where",
            Op::Expand { .. } => "expand",
            Op::Slice { .. } => "slice",
            Op::Resize(_) => "resize",
            Op::Elementwise { .. } => "fused_elementwise",
            Op::Gemm(_) => "gemm",
            Op::MatMul => "matmul",
            Op::Binary(b) => b.name(),
            Op::Act(a) => a.name(),
            Op::GlobalAvgPool => "global_avg_pool",
            Op::GlobalMaxPool => "global_max_pool",
            Op::Pool2d(a) => match a.kind {
                PoolKind::Max => "max_pool2d",
                PoolKind::Avg => "avg_pool2d",
            },
            Op::MaxPoolIndices { .. } => "max_pool2d_indices",
            Op::IntTensor { .. } => "int_tensor",
            Op::ReduceMean { .. } => "reduce_mean",
            Op::Reduce {
                kind: ReduceKind::Sum,
                ..
            } => "reduce_sum",
            Op::Reduce {
                kind: ReduceKind::Max,
                ..
            } => "reduce_max",
            Op::Reduce {
                kind: ReduceKind::Min,
                ..
            } => "reduce_min",
            Op::Reshape { .. } => "reshape",
            Op::SqueezeExcite(_) => "squeeze_excite",
            Op::SeGate(_) => "se_gate",
            Op::Reorder { .. } => "reorder",
            Op::Concat { .. } => "concat",
            Op::Pad { .. } => "pad",
            Op::Transpose { .. } => "transpose",
            Op::Softmax { .. } => "softmax",
        }
    }

    /// Types of the results after the first, given the first (a pooling convolution's
    /// channel means); most ops have one result.
    pub fn extra_outputs(&self, first: &TensorType) -> Vec<TensorType> {
        match self {
            Op::Conv2d(a) if a.pool && first.rank() == 4 => {
                vec![TensorType::f32([first.shape[0], first.shape[1]])]
            }
            _ => vec![],
        }
    }

    /// A fused SE block: the whole block, or its gate step (whose scale a gated
    /// convolution does).
    pub fn is_se_block(&self) -> bool {
        matches!(self, Op::SqueezeExcite(_) | Op::SeGate(_))
    }

    /// All attributes, sorted by key, defaults included (for the printer).
    pub fn attrs(&self, names: &[String]) -> Vec<(&'static str, String)> {
        fn list(v: &[u64]) -> String {
            let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
            format!("[{}]", s.join(","))
        }
        match self {
            Op::Conv2d(a) => {
                let mut v = vec![];
                if let Some(act) = a.act {
                    v.push(("act", act.spelled()));
                }
                v.push(("dilations", list(&a.dilations)));
                if a.gated {
                    v.push(("gated", "true".into()));
                }
                v.extend([("group", a.group.to_string()), ("pads", list(&a.pads))]);
                if a.pool {
                    v.push(("pool", "true".into()));
                }
                v.push(("strides", list(&a.strides)));
                if a.residual {
                    v.push(("residual", "true".into()));
                }
                v
            }
            Op::ConvTranspose2d(a) => vec![
                ("dilations", list(&a.dilations)),
                ("group", a.group.to_string()),
                ("output_padding", list(&a.output_padding)),
                ("pads", list(&a.pads)),
                ("strides", list(&a.strides)),
            ],
            Op::Resize(a) => a.attrs(names),
            Op::Elementwise { prog } => {
                let p: Vec<String> = prog.iter().map(|i| i.spelled()).collect();
                vec![("prog", format!("[{}]", p.join("; ")))]
            }
            Op::Expand { shape } => {
                let s: Vec<String> = shape.iter().map(|d| d.display(names)).collect();
                vec![("shape", format!("[{}]", s.join(",")))]
            }
            Op::Slice {
                starts,
                steps,
                shape,
            } => {
                let s: Vec<String> = shape.iter().map(|d| d.display(names)).collect();
                let st: Vec<String> = steps.iter().map(|x| x.to_string()).collect();
                vec![
                    ("shape", format!("[{}]", s.join(","))),
                    ("starts", list(starts)),
                    ("steps", format!("[{}]", st.join(","))),
                ]
            }
            Op::Pool2d(a) => vec![
                ("ceil_mode", a.ceil_mode.to_string()),
                ("count_include_pad", a.count_include_pad.to_string()),
                ("dilations", list(&a.dilations)),
                ("kernel", list(&a.kernel)),
                ("pads", list(&a.pads)),
                ("strides", list(&a.strides)),
            ],
            Op::MaxPoolIndices { pool, column_major } => vec![
                ("ceil_mode", pool.ceil_mode.to_string()),
                ("column_major", column_major.to_string()),
                ("dilations", list(&pool.dilations)),
                ("kernel", list(&pool.kernel)),
                ("pads", list(&pool.pads)),
                ("strides", list(&pool.strides)),
            ],
            Op::IntTensor { shape, values } => {
                let v: Vec<String> = values.iter().map(|x| x.display(names)).collect();
                vec![
                    ("shape", list(shape)),
                    ("values", format!("[{}]", v.join(","))),
                ]
            }
            Op::Gemm(a) => vec![
                ("alpha", format!("{:?}", a.alpha)),
                ("beta", format!("{:?}", a.beta)),
                ("trans_a", a.trans_a.to_string()),
                ("trans_b", a.trans_b.to_string()),
            ],
            Op::Act(a) => a.attrs(),
            Op::ReduceMean { axes, keep_dims }
            | Op::Reduce {
                axes, keep_dims, ..
            } => {
                let ax: Vec<u64> = axes.iter().map(|&a| a as u64).collect();
                vec![("axes", list(&ax)), ("keep_dims", keep_dims.to_string())]
            }
            Op::Reshape { shape } => {
                let s: Vec<String> = shape.iter().map(|d| d.display(names)).collect();
                vec![("shape", format!("[{}]", s.join(",")))]
            }
            Op::SqueezeExcite(a) => {
                let mut v = vec![];
                if let Some(act) = a.act {
                    v.push(("act", act.spelled()));
                }
                v.extend([("gate", a.gate.spelled()), ("inner", a.inner.spelled())]);
                if a.pooled {
                    v.push(("pooled", "true".into()));
                }
                if a.residual {
                    v.push(("residual", "true".into()));
                }
                v
            }
            Op::SeGate(a) => vec![("gate", a.gate.spelled()), ("inner", a.inner.spelled())],
            Op::Reorder { to } => vec![("to", to.name())],
            Op::Concat { axis } | Op::Softmax { axis } => vec![("axis", axis.to_string())],
            Op::Pad { pads, mode } => {
                let p: Vec<String> = pads.iter().map(|(a, b)| format!("({a},{b})")).collect();
                let m = match mode {
                    PadMode::Constant(v) => format!("constant({v:?})"),
                    PadMode::ConstantInput => "constant(%1)".into(),
                    PadMode::Reflect => "reflect".into(),
                    PadMode::Edge => "edge".into(),
                };
                vec![("mode", m), ("pads", format!("[{}]", p.join(",")))]
            }
            Op::Transpose { perm } => {
                let p: Vec<u64> = perm.iter().map(|&a| a as u64).collect();
                vec![("perm", list(&p))]
            }
            _ => vec![],
        }
    }

    /// Accepted operand counts `(min, max)`.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Input { .. } | Op::Const(_) | Op::IntTensor { .. } => (0, 0),
            Op::Pad {
                mode: PadMode::ConstantInput,
                ..
            } => (2, 2),
            Op::Identity
            | Op::Act(_)
            | Op::GlobalAvgPool
            | Op::GlobalMaxPool
            | Op::Pool2d(_)
            | Op::MaxPoolIndices { .. }
            | Op::ReduceMean { .. }
            | Op::Reduce { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Pad { .. }
            | Op::Softmax { .. }
            | Op::Expand { .. }
            | Op::Slice { .. }
            | Op::Reorder { .. }
            | Op::Resize(_) => (1, 1),
            Op::Where => (3, 3),
            Op::Elementwise { .. } => (1, usize::MAX),
            Op::Concat { .. } => (1, usize::MAX),
            Op::Binary(_) | Op::MatMul => (2, 2),
            Op::Conv2d(a) if a.residual || a.gated => {
                let n = 3 + usize::from(a.residual) + usize::from(a.gated);
                (n, n)
            }
            Op::Conv2d(_) | Op::ConvTranspose2d(_) | Op::Gemm(_) => (2, 3),
            Op::SqueezeExcite(a) => (a.operand_count(), a.operand_count()),
            Op::SeGate(_) => (5, 5),
        }
    }

    /// The type rule: output types from operand types. Inputs and constants carry their
    /// type on the node and are not inferred here. Every result is held to
    /// [`MAX_ELEMENTS`](crate::MAX_ELEMENTS), so no later size computation can wrap.
    pub fn infer(&self, ins: &[&TensorType]) -> Result<TensorType, IrError> {
        self.infer_constrained(ins).map(|(t, _)| t)
    }

    /// [`Op::infer`], and the constraints on the symbols the rule implies (their `origin`
    /// left empty, for the graph to fill in).
    pub fn infer_constrained(
        &self,
        ins: &[&TensorType],
    ) -> Result<(TensorType, Vec<Constraint>), IrError> {
        let cx = crate::infer::Cx {
            name: self.name(),
            ins,
            reqs: Default::default(),
        };
        let t = self.infer_shape(&cx)?;
        t.check_size().map_err(|m| IrError::ty(self.name(), m))?;
        Ok((t, cx.reqs.into_inner()))
    }

    /// The checks every op shares (operand count, f32 operands), then the op's own rule
    /// (in [`crate::infer`], by family).
    fn infer_shape(&self, cx: &crate::infer::Cx) -> Result<TensorType, IrError> {
        let (name, ins) = (cx.name, cx.ins);
        let (lo, hi) = self.arity();
        if ins.len() < lo || ins.len() > hi {
            return Err(IrError::Arity {
                op: name.into(),
                expected: if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}..={hi}")
                },
                got: ins.len(),
            });
        }
        if let Some(t) = ins.iter().find(|t| t.dtype != DType::F32) {
            if !matches!(self, Op::Identity | Op::Reshape { .. }) {
                return Err(IrError::ty(name, format!(
                    "operands must be f32, got {t}: int64 results (MaxPool indices, shapes) can only be reshaped and returned"
                )));
            }
        }
        crate::infer::shape(self, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::{erf, Activation};

    #[test]
    fn erf_terminates_and_is_accurate_everywhere() {
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-15);
        assert!((erf(-1.0) + 0.842_700_792_949_714_9).abs() < 1e-15);
        assert!((erf(3.0) - 0.999_977_909_503_001_4).abs() < 1e-15);
        assert_eq!(Activation::Gelu { tanh: false }.apply(0.0), 0.0);
    }
}
