//! Tensor types: element type, dimensions (known, or expressions over symbols), shapes.
use crate::dim_expr::DimExpr;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, RwLock};

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

/// One dimension: a known extent, `coeff * sym`, or any other expression over the symbols
/// ([`DimExpr`], interned: see [`crate::dim_expr`]), bound at run time from the input
/// shapes. The form is canonical (a constant is always `Known`, `k * s` always `Sym`), so
/// equal expressions compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A compile-time extent.
    Known(u64),
    /// `coeff * symbol`, with `coeff >= 1`.
    Sym(SymId, u64),
    /// Any other expression (a sum, a quotient, min/max...).
    Expr(ExprId),
}

impl Dim {
    /// The canonical dim of an expression; `None` for a negative constant.
    pub fn from_expr(e: DimExpr) -> Option<Dim> {
        if let Some(v) = e.as_known() {
            return u64::try_from(v).ok().map(Dim::Known);
        }
        if let Some((s, k)) = e.as_linear_sym() {
            return Some(Dim::Sym(s, k));
        }
        Some(Dim::Expr(ExprId::intern(e)))
    }
    /// A symbol.
    pub fn sym(s: SymId) -> Dim {
        Dim::Sym(s, 1)
    }
    /// The dim as an expression.
    pub fn expr(self) -> DimExpr {
        match self {
            Dim::Known(v) => DimExpr::known(v as i64),
            Dim::Sym(s, k) => DimExpr::sym(s).scale(k as i64).unwrap_or_default(),
            Dim::Expr(id) => (*id.get()).clone(),
        }
    }
    /// The known value, if any.
    pub fn known(self) -> Option<u64> {
        match self {
            Dim::Known(v) => Some(v),
            _ => None,
        }
    }
    /// True when both are known and differ: a contradiction no binding can resolve (any
    /// other inequality may still hold as a constraint).
    pub fn known_ne(self, o: Dim) -> bool {
        matches!((self, o), (Dim::Known(a), Dim::Known(b)) if a != b)
    }
    /// True unless the dim is a known extent.
    pub fn is_symbolic(self) -> bool {
        !matches!(self, Dim::Known(_))
    }
    /// Value under a binding of symbols (`None` if a symbol is unbound, the value is
    /// negative, or it overflows).
    pub fn eval(self, syms: &[u64]) -> Option<u64> {
        match self {
            Dim::Known(v) => Some(v),
            Dim::Sym(s, k) => syms.get(s.0 as usize).and_then(|v| v.checked_mul(k)),
            Dim::Expr(id) => id.get().eval(syms),
        }
    }
    /// True when `self >= o` at every binding of symbols to extents (>= 1), as far as the
    /// canonical form of `self - o` shows.
    pub fn always_ge(self, o: Dim) -> bool {
        self.expr()
            .sub(&o.expr())
            .and_then(|d| d.min_value())
            .is_some_and(|v| v >= 0)
    }
    /// Symbols the dim mentions, sorted.
    pub fn symbols(self) -> Vec<SymId> {
        match self {
            Dim::Known(_) => vec![],
            Dim::Sym(s, _) => vec![s],
            Dim::Expr(id) => id.get().symbols(),
        }
    }
    fn lift(
        self,
        o: Dim,
        known: impl Fn(u64, u64) -> Option<u64>,
        f: impl Fn(&DimExpr, &DimExpr) -> Option<DimExpr>,
    ) -> Option<Dim> {
        match (self, o) {
            (Dim::Known(a), Dim::Known(b)) => known(a, b).map(Dim::Known),
            _ => Dim::from_expr(f(&self.expr(), &o.expr())?),
        }
    }
    /// Product of two dims, `None` on overflow.
    pub fn checked_mul(self, o: Dim) -> Option<Dim> {
        self.lift(o, u64::checked_mul, DimExpr::mul)
    }
    /// Sum of two dims, `None` on overflow.
    pub fn checked_add(self, o: Dim) -> Option<Dim> {
        self.lift(o, u64::checked_add, DimExpr::add)
    }
    /// `self - o`; `None` if known and negative. A symbolic difference may be negative for
    /// some bindings: its users record the constraint that it is not.
    pub fn checked_sub(self, o: Dim) -> Option<Dim> {
        self.lift(o, u64::checked_sub, DimExpr::sub)
    }
    /// Exact quotient `self / o`, `None` if not exact for every binding (as far as the
    /// canonical forms show) or not representable.
    pub fn checked_div(self, o: Dim) -> Option<Dim> {
        self.lift(
            o,
            |a, b| (b != 0 && a % b == 0).then(|| a / b),
            DimExpr::div_exact,
        )
    }
    /// `floor(self / k)`.
    pub fn div_floor(self, k: u64) -> Option<Dim> {
        match self {
            Dim::Known(a) => a.checked_div(k).map(Dim::Known),
            _ => Dim::from_expr(self.expr().div_floor(k)?),
        }
    }
    /// `ceil(self / k)`.
    pub fn div_ceil(self, k: u64) -> Option<Dim> {
        match self {
            Dim::Known(a) => (k != 0).then(|| Dim::Known(a.div_ceil(k))),
            _ => Dim::from_expr(self.expr().div_ceil(k)?),
        }
    }
    /// `min(self, o)`.
    pub fn min(self, o: Dim) -> Option<Dim> {
        self.lift(o, |a, b| Some(a.min(b)), DimExpr::minimum)
    }
    /// `max(self, o)`.
    pub fn max(self, o: Dim) -> Option<Dim> {
        self.lift(o, |a, b| Some(a.max(b)), DimExpr::maximum)
    }
    /// The extent with every symbol at 1 (at least 0; the size limit's check at batch 1).
    pub fn nominal(self) -> u64 {
        match self {
            Dim::Known(v) | Dim::Sym(_, v) => v,
            Dim::Expr(id) => {
                let e = id.get();
                let ones = vec![1; e.symbols().last().map_or(0, |s| s.0 as usize + 1)];
                e.eval(&ones).unwrap_or(0)
            }
        }
    }
    /// Formats the dim with the graph's symbol names.
    pub fn display(self, names: &[String]) -> String {
        match self {
            Dim::Known(v) => v.to_string(),
            _ => self.expr().display(names),
        }
    }
}

/// An interned [`DimExpr`]: `Dim` stays `Copy` and its equality stays one comparison,
/// the way compilers intern their symbols (rustc's `Symbol`). The table only grows; it
/// holds the distinct extents of the graphs compiled in this process, a few per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExprId(u32);

struct Interner {
    exprs: Vec<Arc<DimExpr>>,
    ids: HashMap<Arc<DimExpr>, u32>,
}

static INTERNER: LazyLock<RwLock<Interner>> = LazyLock::new(|| {
    RwLock::new(Interner {
        exprs: vec![],
        ids: HashMap::new(),
    })
});

impl ExprId {
    fn intern(e: DimExpr) -> ExprId {
        if let Some(&id) = INTERNER
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .get(&e)
        {
            return ExprId(id);
        }
        let mut t = INTERNER.write().unwrap_or_else(|p| p.into_inner());
        if let Some(&id) = t.ids.get(&e) {
            return ExprId(id);
        }
        let id = t.exprs.len() as u32;
        let e = Arc::new(e);
        t.exprs.push(e.clone());
        t.ids.insert(e, id);
        ExprId(id)
    }
    /// The expression (shared: evaluating it copies nothing).
    pub fn get(self) -> Arc<DimExpr> {
        let t = INTERNER.read().unwrap_or_else(|p| p.into_inner());
        t.exprs[self.0 as usize].clone()
    }
}

impl From<u64> for Dim {
    fn from(v: u64) -> Self {
        Dim::Known(v)
    }
}

/// The largest tensor secc accepts, in elements (16 GiB of f32), and so the largest extent
/// of any axis (at batch 1). Every size derived from attributes is checked against it, which
/// also keeps the generated code's 64-bit index arithmetic far from wrapping.
pub const MAX_ELEMENTS: u64 = 1 << 32;

/// A tensor shape.
pub type Shape = SmallVec<[Dim; 4]>;

/// How a value is stored in memory. The shape is always the logical one (`[N, C, H, W]`);
/// the layout only changes addresses, so the interpreter ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum Layout {
    /// Row-major over the logical shape (NCHW for images).
    #[default]
    Plain,
    /// `nChw{c}c`: a rank-4 f32 tensor stored as `[N, ceil(C/c), H, W, c]`, channels padded
    /// to a multiple of `c` (the target's vector width). Padding lanes hold values that no
    /// kernel reads as data.
    Blocked(u32),
}

impl Layout {
    /// The channel block, if blocked.
    pub fn block(self) -> Option<u32> {
        match self {
            Layout::Plain => None,
            Layout::Blocked(c) => Some(c),
        }
    }
    /// oneDNN-style name: `nchw`, `nChw16c`.
    pub fn name(self) -> String {
        match self {
            Layout::Plain => "nchw".into(),
            Layout::Blocked(c) => format!("nChw{c}c"),
        }
    }
}

/// dtype plus shape of one value, and its memory layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// element type
    pub dtype: DType,
    /// dimensions, outermost first
    pub shape: Shape,
    /// memory layout (plain until the layout pass chooses otherwise)
    pub layout: Layout,
}

impl TensorType {
    /// An f32 tensor of the given shape.
    pub fn f32(shape: impl IntoIterator<Item = Dim>) -> Self {
        TensorType {
            dtype: DType::F32,
            shape: shape.into_iter().collect(),
            layout: Layout::Plain,
        }
    }
    /// An i64 tensor of the given shape.
    pub fn i64(shape: impl IntoIterator<Item = Dim>) -> Self {
        TensorType {
            dtype: DType::I64,
            shape: shape.into_iter().collect(),
            layout: Layout::Plain,
        }
    }
    /// An f32 tensor of known extents.
    pub fn f32_known(shape: &[u64]) -> Self {
        Self::f32(shape.iter().map(|&d| Dim::Known(d)))
    }
    /// The same type in another layout.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }
    /// Same element type and shape, whatever the layouts.
    pub fn same_logical(&self, o: &TensorType) -> bool {
        self.dtype == o.dtype && self.shape == o.shape
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
    /// Checks the shape against [`MAX_ELEMENTS`] (each extent and the element count, with
    /// symbolic dims counted at batch 1).
    pub fn check_size(&self) -> Result<(), String> {
        let mut n: u128 = 1;
        for d in &self.shape {
            n = n.saturating_mul(u128::from(d.nominal()));
        }
        let big = self.shape.iter().any(|d| d.nominal() > MAX_ELEMENTS);
        if big || n > u128::from(MAX_ELEMENTS) {
            let dims: Vec<String> = self.shape.iter().map(|d| d.display(&[])).collect();
            return Err(format!(
                "shape [{}] exceeds the size limit of 2^32 elements",
                dims.join(",")
            ));
        }
        Ok(())
    }
    /// Concrete extents under a symbol binding.
    pub fn eval(&self, syms: &[u64]) -> Option<Vec<usize>> {
        self.shape
            .iter()
            .map(|d| d.eval(syms).map(|v| v as usize))
            .collect()
    }
    /// Formats as `f32[N,64,1,1]`, and `f32[N,64,56,56]{nChw16c}` when blocked.
    pub fn display(&self, names: &[String]) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.display(names)).collect();
        let layout = match self.layout {
            Layout::Plain => String::new(),
            l => format!("{{{}}}", l.name()),
        };
        format!("{}[{}]{layout}", self.dtype.name(), dims.join(","))
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
