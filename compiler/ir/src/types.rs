//! Tensor types: element type, dimensions (known or a multiple of one symbol), shapes.
use smallvec::SmallVec;
use std::fmt;

/// Element type. secc computes on float32 tensors (booleans are 0/1 floats; integer shape
/// tensors are folded at import). int64 values exist only as results that ONNX defines as
/// int64 and floats could not hold exactly (MaxPool's argmax indices, returned shapes): no
/// op but `identity` and `reshape` takes one as an operand, so they only flow to graph
/// outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE-754 binary32
    F32,
    /// two's-complement 64-bit integer
    I64,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::I64 => 8,
        }
    }
    /// Name used in the textual IR and artifacts.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
        }
    }
}

/// Index of a symbolic dimension in [`crate::Graph::sym_names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymId(pub u32);

/// One dimension: a known extent, or `coeff * sym` where `sym` is bound at run time
/// (the batch size). Products of two symbols are not representable and are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A compile-time extent.
    Known(u64),
    /// `coeff * symbol`, with `coeff >= 1`.
    Sym(SymId, u64),
}

impl Dim {
    /// The known value, if any.
    pub fn known(self) -> Option<u64> {
        match self {
            Dim::Known(v) => Some(v),
            Dim::Sym(..) => None,
        }
    }
    /// Value under a binding of symbols.
    pub fn eval(self, syms: &[u64]) -> Option<u64> {
        match self {
            Dim::Known(v) => Some(v),
            Dim::Sym(s, k) => syms.get(s.0 as usize).map(|v| v * k),
        }
    }
    /// Product of two dims, `None` if it would need a product of symbols.
    pub fn checked_mul(self, o: Dim) -> Option<Dim> {
        match (self, o) {
            (Dim::Known(a), Dim::Known(b)) => Some(Dim::Known(a * b)),
            (Dim::Known(0), Dim::Sym(..)) | (Dim::Sym(..), Dim::Known(0)) => Some(Dim::Known(0)),
            (Dim::Known(a), Dim::Sym(s, k)) | (Dim::Sym(s, k), Dim::Known(a)) => {
                Some(Dim::Sym(s, k * a))
            }
            (Dim::Sym(..), Dim::Sym(..)) => None,
        }
    }
    /// Exact quotient `self / o`, `None` if not exact or not representable.
    pub fn checked_div(self, o: Dim) -> Option<Dim> {
        match (self, o) {
            (Dim::Known(a), Dim::Known(b)) if b != 0 && a % b == 0 => Some(Dim::Known(a / b)),
            (Dim::Sym(s, k), Dim::Known(b)) if b != 0 && k % b == 0 => Some(Dim::Sym(s, k / b)),
            (Dim::Sym(s, k), Dim::Sym(t, j)) if s == t && k % j == 0 => Some(Dim::Known(k / j)),
            _ => None,
        }
    }
    /// Formats the dim with the graph's symbol names.
    pub fn display(self, names: &[String]) -> String {
        match self {
            Dim::Known(v) => v.to_string(),
            Dim::Sym(s, k) => {
                let n = names
                    .get(s.0 as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("s{}", s.0));
                if k == 1 {
                    n
                } else {
                    format!("{k}*{n}")
                }
            }
        }
    }
}

impl From<u64> for Dim {
    fn from(v: u64) -> Self {
        Dim::Known(v)
    }
}

/// A tensor shape.
pub type Shape = SmallVec<[Dim; 4]>;

/// dtype plus shape of one value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// element type
    pub dtype: DType,
    /// dimensions, outermost first
    pub shape: Shape,
}

impl TensorType {
    /// An f32 tensor of the given shape.
    pub fn f32(shape: impl IntoIterator<Item = Dim>) -> Self {
        TensorType {
            dtype: DType::F32,
            shape: shape.into_iter().collect(),
        }
    }
    /// An i64 tensor of the given shape.
    pub fn i64(shape: impl IntoIterator<Item = Dim>) -> Self {
        TensorType {
            dtype: DType::I64,
            shape: shape.into_iter().collect(),
        }
    }
    /// An f32 tensor of known extents.
    pub fn f32_known(shape: &[u64]) -> Self {
        Self::f32(shape.iter().map(|&d| Dim::Known(d)))
    }
    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Number of elements as a dim (known or `k * sym`).
    pub fn numel(&self) -> Option<Dim> {
        self.shape
            .iter()
            .try_fold(Dim::Known(1), |a, &d| a.checked_mul(d))
    }
    /// Concrete extents under a symbol binding.
    pub fn eval(&self, syms: &[u64]) -> Option<Vec<usize>> {
        self.shape
            .iter()
            .map(|d| d.eval(syms).map(|v| v as usize))
            .collect()
    }
    /// Formats as `f32[N,64,1,1]`.
    pub fn display(&self, names: &[String]) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.display(names)).collect();
        format!("{}[{}]", self.dtype.name(), dims.join(","))
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display(&[]))
    }
}

/// Numpy-style (multidirectional) broadcast of two shapes.
pub fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Result<Shape, String> {
    let r = a.len().max(b.len());
    let mut out = Shape::new();
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            Dim::Known(1)
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            Dim::Known(1)
        };
        let d = if da == db || db == Dim::Known(1) {
            da
        } else if da == Dim::Known(1) {
            db
        } else {
            return Err(format!(
                "shapes {:?} and {:?} do not broadcast (axis {i})",
                a.iter().map(|d| d.display(&[])).collect::<Vec<_>>(),
                b.iter().map(|d| d.display(&[])).collect::<Vec<_>>()
            ));
        };
        out.push(d);
    }
    Ok(out)
}
