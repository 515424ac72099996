//! The e-graph language: only what SE detection needs. Every other IR value is an opaque
//! `Leaf` (`v<n>` values, `c<n>` constants); shapes and constant-ness live in the analysis.
use egg::{define_language, Id, Symbol};
use secc_ir::Activation;
use std::fmt;
use std::str::FromStr;

/// An activation kind as an e-graph leaf; floats kept bit-exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActKind {
    /// relu
    Relu,
    /// clip(0, 6), only as a step of a spelled-out hard sigmoid
    Relu6,
    /// sigmoid
    Sigmoid,
    /// silu
    Silu,
    /// hard swish
    HardSwish,
    /// hard sigmoid with alpha, beta bits
    HardSigmoid(u32, u32),
}

impl ActKind {
    /// From an IR activation (None for forms SE matching does not use).
    pub fn from_ir(a: Activation) -> Option<Self> {
        Some(match a {
            Activation::Relu => ActKind::Relu,
            Activation::Sigmoid => ActKind::Sigmoid,
            Activation::Silu => ActKind::Silu,
            Activation::HardSwish => ActKind::HardSwish,
            Activation::HardSigmoid { alpha, beta } => {
                ActKind::HardSigmoid(alpha.to_bits(), beta.to_bits())
            }
            Activation::Clip { min, max } if min == 0.0 && max == 6.0 => ActKind::Relu6,
            _ => return None,
        })
    }
    /// Back to the IR activation.
    pub fn to_ir(self) -> Activation {
        match self {
            ActKind::Relu => Activation::Relu,
            ActKind::Relu6 => Activation::Clip { min: 0.0, max: 6.0 },
            ActKind::Sigmoid => Activation::Sigmoid,
            ActKind::Silu => Activation::Silu,
            ActKind::HardSwish => Activation::HardSwish,
            ActKind::HardSigmoid(a, b) => Activation::HardSigmoid {
                alpha: f32::from_bits(a),
                beta: f32::from_bits(b),
            },
        }
    }
    /// Gates an SE block may end with (outputs in [0, 1]).
    pub fn is_gate(self) -> bool {
        matches!(self, ActKind::Sigmoid | ActKind::HardSigmoid(..))
    }
}

impl fmt::Display for ActKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActKind::Relu => write!(f, "relu"),
            ActKind::Relu6 => write!(f, "relu6"),
            ActKind::Sigmoid => write!(f, "sigmoid"),
            ActKind::Silu => write!(f, "silu"),
            ActKind::HardSwish => write!(f, "hard_swish"),
            ActKind::HardSigmoid(a, b) => write!(
                f,
                "hard_sigmoid:{:?}:{:?}",
                f32::from_bits(*a),
                f32::from_bits(*b)
            ),
        }
    }
}

impl FromStr for ActKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "relu" => ActKind::Relu,
            "relu6" => ActKind::Relu6,
            "sigmoid" => ActKind::Sigmoid,
            "silu" => ActKind::Silu,
            "hard_swish" => ActKind::HardSwish,
            _ => {
                let p: Vec<&str> = s.split(':').collect();
                match p.as_slice() {
                    ["hard_sigmoid", a, b] => {
                        let a: f32 = a.parse().map_err(|_| s.to_string())?;
                        let b: f32 = b.parse().map_err(|_| s.to_string())?;
                        ActKind::HardSigmoid(a.to_bits(), b.to_bits())
                    }
                    _ => return Err(format!("not an activation kind: {s}")),
                }
            }
        })
    }
}

define_language! {
    /// Terms of the SE-fusion e-graph.
    pub enum SeLang {
        "gap" = Gap(Id),
        "mean_hw" = MeanHw(Id),
        "mean_hw_flat" = MeanHwFlat(Id),
        "sum_hw" = SumHw(Id),
        "sum_hw_flat" = SumHwFlat(Id),
        "to2d" = To2d(Id),
        "to4d" = To4d(Id),
        "dense" = Dense([Id; 3]),
        "matmul" = MatMul([Id; 2]),
        "conv1x1" = Conv1x1([Id; 3]),
        "add" = Add([Id; 2]),
        "mul" = Mul([Id; 2]),
        "div" = Div([Id; 2]),
        "act" = Act([Id; 2]),
        "se" = Se([Id; 7]),
        "se_gate" = SeGate([Id; 7]),
        "gconv" = GatedConv([Id; 4]),
        "shared" = Shared(Id),
        "shared2" = Shared2(Id),
        "t" = T(Id),
        "flat" = Flat(Id),
        "w2d" = W2d(Id),
        "nobias" = NoBias,
        Kind(ActKind),
        Leaf(Symbol),
    }
}
