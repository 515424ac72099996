//! Dimensions in the manifest: a number, `coeff * symbol`, or an expression over the
//! symbols (postfix, so a reader evaluates it with a stack and validates it in one pass),
//! and the constraints on the symbols that the graph implies.
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Longest expression a manifest may hold (a bound for validation and evaluation).
pub const MAX_EXPR_LEN: usize = 256;

/// One dimension: a number, `coeff * symbol`, or an expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DimDecl {
    /// fixed extent
    Known(u64),
    /// `coeff * syms[sym]`
    Sym {
        /// symbol index into [`Manifest::symbols`](crate::Manifest::symbols)
        sym: u32,
        /// multiplier
        coeff: u64,
    },
    /// an expression, postfix
    Expr {
        /// the operations, evaluated left to right on a stack
        expr: Vec<DimOp>,
    },
}

/// One step of a postfix dimension expression. Arithmetic is exact on non-negative
/// integers: an overflow, a subtraction below zero or a stack error makes the value
/// undefined, which the runtime reports as a binding the model cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DimOp {
    /// push a number
    Const(u64),
    /// push a symbol's value
    Sym(u32),
    /// a + b
    Add,
    /// a - b (undefined below zero)
    Sub,
    /// a * b
    Mul,
    /// floor(a / k), k >= 1
    Div(u64),
    /// ceil(a / k), k >= 1
    CeilDiv(u64),
    /// min(a, b)
    Min,
    /// max(a, b)
    Max,
}

impl DimOp {
    /// (operands popped, whether the op is well formed)
    fn arity(self, nsyms: usize) -> (usize, bool) {
        match self {
            DimOp::Const(_) => (0, true),
            DimOp::Sym(s) => (0, (s as usize) < nsyms),
            DimOp::Div(k) | DimOp::CeilDiv(k) => (1, k >= 1),
            DimOp::Add | DimOp::Sub | DimOp::Mul | DimOp::Min | DimOp::Max => (2, true),
        }
    }
}

/// Checks a postfix expression: known symbols, divisors >= 1, no stack underflow, exactly
/// one value left, at most [`MAX_EXPR_LEN`] steps.
pub fn check_expr(expr: &[DimOp], nsyms: usize) -> Result<(), String> {
    if expr.is_empty() || expr.len() > MAX_EXPR_LEN {
        return Err(format!("an expression of {} steps", expr.len()));
    }
    let mut depth = 0usize;
    for op in expr {
        let (pops, ok) = op.arity(nsyms);
        if !ok {
            return Err(format!("bad expression step {op:?}"));
        }
        depth = depth
            .checked_sub(pops)
            .ok_or_else(|| format!("expression stack underflow at {op:?}"))?
            + 1;
    }
    if depth != 1 {
        return Err(format!("expression leaves {depth} values"));
    }
    Ok(())
}

fn eval_expr(expr: &[DimOp], syms: &[u64]) -> Option<u64> {
    let mut st: Vec<u64> = Vec::with_capacity(8);
    for op in expr {
        let v = match *op {
            DimOp::Const(v) => v,
            DimOp::Sym(s) => *syms.get(s as usize)?,
            DimOp::Div(k) | DimOp::CeilDiv(k) => {
                let a = st.pop()?;
                match (*op, k) {
                    (_, 0) => return None,
                    (DimOp::Div(_), k) => a / k,
                    (_, k) => a.div_ceil(k),
                }
            }
            _ => {
                let b = st.pop()?;
                let a = st.pop()?;
                match op {
                    DimOp::Add => a.checked_add(b)?,
                    DimOp::Sub => a.checked_sub(b)?,
                    DimOp::Mul => a.checked_mul(b)?,
                    DimOp::Min => a.min(b),
                    _ => a.max(b),
                }
            }
        };
        st.push(v);
    }
    match st[..] {
        [v] => Some(v),
        _ => None,
    }
}

/// An expression in infix form with symbol names (`(H + 2 - 3) / 2 + 1`).
fn show_expr(expr: &[DimOp], names: &[String]) -> String {
    // each stack entry: text and whether it needs parentheses as an operand
    let mut st: Vec<(String, bool)> = vec![];
    for op in expr {
        let e = match *op {
            DimOp::Const(v) => (v.to_string(), false),
            DimOp::Sym(s) => (sym_name(names, s), false),
            DimOp::Div(k) | DimOp::CeilDiv(k) => {
                let (a, p) = st.pop().unwrap_or_default();
                let a = if p { format!("({a})") } else { a };
                let f = if matches!(op, DimOp::Div(_)) {
                    "/"
                } else {
                    "/^"
                };
                (format!("{a} {f} {k}"), true)
            }
            _ => {
                let (b, pb) = st.pop().unwrap_or_default();
                let (a, pa) = st.pop().unwrap_or_default();
                let wrap = |s: String, p: bool| if p { format!("({s})") } else { s };
                match op {
                    DimOp::Add => (format!("{a} + {}", wrap(b, pb)), true),
                    DimOp::Sub => (format!("{a} - {}", wrap(b, pb)), true),
                    DimOp::Mul => (format!("{} * {}", wrap(a, pa), wrap(b, pb)), true),
                    DimOp::Min => (format!("min({a}, {b})"), false),
                    _ => (format!("max({a}, {b})"), false),
                }
            }
        };
        st.push(e);
    }
    st.pop().map(|e| e.0).unwrap_or_default()
}

fn sym_name(names: &[String], s: u32) -> String {
    names
        .get(s as usize)
        .cloned()
        .unwrap_or_else(|| format!("s{s}"))
}

impl DimDecl {
    /// Value under a symbol binding; `None` if undefined there (overflow, a negative
    /// intermediate, an unbound symbol).
    pub fn eval(&self, syms: &[u64]) -> Option<u64> {
        match self {
            DimDecl::Known(v) => Some(*v),
            DimDecl::Sym { sym, coeff } => syms.get(*sym as usize)?.checked_mul(*coeff),
            DimDecl::Expr { expr } => eval_expr(expr, syms),
        }
    }

    /// Element count of a shape under a binding; `None` on overflow or an undefined extent.
    pub fn elements(shape: &[DimDecl], syms: &[u64]) -> Option<u64> {
        shape
            .iter()
            .try_fold(1u64, |n, d| n.checked_mul(d.eval(syms)?))
    }

    /// Display with symbol names: `64`, `N`, `4*N`, `(H - 2) / 2 + 1`.
    pub fn display(&self, names: &[String]) -> String {
        match self {
            DimDecl::Known(v) => v.to_string(),
            DimDecl::Sym { sym, coeff: 1 } => sym_name(names, *sym),
            DimDecl::Sym { sym, coeff } => format!("{coeff}*{}", sym_name(names, *sym)),
            DimDecl::Expr { expr } => show_expr(expr, names),
        }
    }

    /// Checks the dimension against `nsyms` symbols.
    pub fn check(&self, nsyms: usize) -> Result<(), String> {
        match self {
            DimDecl::Known(_) => Ok(()),
            DimDecl::Sym { sym, .. } if *sym as usize >= nsyms => {
                Err(format!("unknown symbol {sym}"))
            }
            DimDecl::Sym { coeff: 0, .. } => Err("a dimension of 0 * symbol".into()),
            DimDecl::Sym { .. } => Ok(()),
            DimDecl::Expr { expr } => check_expr(expr, nsyms),
        }
    }
}

/// How a constraint relates its two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// lhs >= rhs
    Ge,
    /// lhs == rhs
    Eq,
}

/// A condition on the symbols the graph needs (e.g. `H >= 3` for a 3x3 valid convolution,
/// two operands' extents equal), checked when a run binds the symbols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintDecl {
    /// left side
    pub lhs: DimDecl,
    /// relation
    pub rel: Relation,
    /// right side
    pub rhs: DimDecl,
    /// the node that needs it, as errors print it (`node "Conv_3" (Conv)`)
    pub origin: String,
}

impl ConstraintDecl {
    /// Checks the constraint under a binding: `Err` with a message naming the node, the
    /// condition and the values.
    pub fn check(&self, syms: &[u64], names: &[String]) -> Result<(), String> {
        let (l, r) = (self.lhs.eval(syms), self.rhs.eval(syms));
        let ok = match (l, r, self.rel) {
            (Some(l), Some(r), Relation::Ge) => l >= r,
            (Some(l), Some(r), Relation::Eq) => l == r,
            _ => false,
        };
        if ok {
            return Ok(());
        }
        let rel = match self.rel {
            Relation::Ge => ">=",
            Relation::Eq => "==",
        };
        let show = |v: Option<u64>| v.map_or("undefined".to_string(), |v| v.to_string());
        let mut binding = String::new();
        for (i, (n, v)) in names.iter().zip(syms).enumerate() {
            let _ = write!(binding, "{}{n} = {v}", if i > 0 { ", " } else { "" });
        }
        Err(format!(
            "{}: needs {} {rel} {}, but it is {} vs {} for {binding}",
            self.origin,
            self.lhs.display(names),
            self.rhs.display(names),
            show(l),
            show(r)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DimOp::*;

    fn names() -> Vec<String> {
        vec!["N".into(), "H".into()]
    }

    #[test]
    fn conv_output_extent_evaluates_and_prints() {
        // (H + 2 - 3) / 2 + 1: a 3x3 conv, pad 1, stride 2
        let d = DimDecl::Expr {
            expr: vec![Sym(1), Const(2), Add, Const(3), Sub, Div(2), Const(1), Add],
        };
        assert!(d.check(2).is_ok());
        assert_eq!(d.eval(&[1, 7]), Some(4));
        assert_eq!(d.eval(&[1, 8]), Some(4));
        assert_eq!(d.eval(&[1, 0]), None, "H + 2 - 3 is negative");
        assert_eq!(d.display(&names()), "(H + 2 - 3) / 2 + 1");
        let c = DimDecl::Expr {
            expr: vec![Sym(1), CeilDiv(4), Sym(0), Min, Const(3), Max],
        };
        assert_eq!(c.eval(&[2, 9]), Some(3));
        assert_eq!(c.eval(&[5, 17]), Some(5));
        assert_eq!(c.display(&names()), "max(min(H /^ 4, N), 3)");
    }

    #[test]
    fn malformed_expressions_are_refused() {
        for (e, nsyms) in [
            (vec![], 2),
            (vec![Add], 2),
            (vec![Const(1), Const(2)], 2),
            (vec![Sym(2)], 2),
            (vec![Sym(0), Div(0)], 2),
            (vec![Const(1); MAX_EXPR_LEN + 1], 2),
        ] {
            assert!(
                DimDecl::Expr { expr: e.clone() }.check(nsyms).is_err(),
                "{e:?}"
            );
            assert_eq!(DimDecl::Expr { expr: e }.eval(&[1, 1]), None);
        }
        assert_eq!(
            DimDecl::Expr {
                expr: vec![Const(u64::MAX), Const(2), Mul]
            }
            .eval(&[]),
            None
        );
    }

    #[test]
    fn serde_forms() {
        let d = DimDecl::Expr {
            expr: vec![Sym(0), Const(3), Sub, CeilDiv(2)],
        };
        let j = serde_json::to_string(&d).unwrap_or_default();
        assert_eq!(
            j,
            r#"{"expr":[{"sym":0},{"const":3},"sub",{"ceil_div":2}]}"#
        );
        let back: DimDecl = serde_json::from_str(&j).unwrap_or(DimDecl::Known(0));
        assert_eq!(back, d);
        let k: DimDecl = serde_json::from_str("7").unwrap_or(DimDecl::Known(0));
        assert_eq!(k, DimDecl::Known(7));
    }

    #[test]
    fn constraints_name_the_node_and_the_values() {
        let c = ConstraintDecl {
            lhs: DimDecl::Sym { sym: 1, coeff: 1 },
            rel: Relation::Ge,
            rhs: DimDecl::Known(3),
            origin: "node \"Conv_3\" (Conv)".into(),
        };
        assert!(c.check(&[1, 3], &names()).is_ok());
        let e = c.check(&[1, 2], &names()).unwrap_err();
        assert_eq!(
            e,
            "node \"Conv_3\" (Conv): needs H >= 3, but it is 2 vs 3 for N = 1, H = 2"
        );
    }
}
