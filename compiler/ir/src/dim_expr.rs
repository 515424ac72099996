//! Symbolic extents as canonical expressions (issue 10's `Dim` as an expression; read
//! tract's `TDim` for the design it follows).
//!
//! A [`DimExpr`] is a polynomial with integer coefficients over *atoms*: symbols, and the
//! operations a polynomial cannot express exactly: floor and ceil division by a constant,
//! min and max. Every constructor returns the canonical form (terms sorted, no zero
//! coefficients, divisions and min/max simplified where the result is exact), so two
//! expressions built differently but equal as polynomials compare equal: the verifier's
//! "same shape" and broadcasting's "same extent" are structural equality. Equality is
//! sound but not complete (`(H + 1) / 2` and `H /^ 2` are equal for every `H` yet differ
//! here); the shape rules then record a constraint instead of concluding.
//!
//! Intermediate coefficients may be negative (`H - 2`); a value is only defined for a
//! binding where it is non-negative ([`DimExpr::eval`]). [`DimExpr::postfix`] writes the
//! expression as the artifact's postfix steps, subtracting negative terms last so a
//! reader's unsigned arithmetic only fails where the value itself is negative.
#![forbid(unsafe_code)]
use crate::SymId;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// An operand of a polynomial term that is not a plain number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    /// a symbol (a named input dimension)
    Sym(SymId),
    /// `floor(e / k)`, `k >= 2`, where `e` is not exactly divisible by `k`
    FloorDiv(Box<DimExpr>, u64),
    /// `ceil(e / k)`, `k >= 2`
    CeilDiv(Box<DimExpr>, u64),
    /// `min(a, b)`, operands in canonical order
    Min(Box<DimExpr>, Box<DimExpr>),
    /// `max(a, b)`, operands in canonical order
    Max(Box<DimExpr>, Box<DimExpr>),
}

/// A product of atoms, sorted (a repeated atom is a power).
type Monomial = Vec<Atom>;

/// A canonical integer polynomial over [`Atom`]s.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DimExpr {
    /// the constant term
    konst: i64,
    /// non-constant terms: monomial -> coefficient (never 0)
    terms: BTreeMap<Monomial, i64>,
}

/// One step of [`DimExpr::postfix`] (the artifact's `DimOp`, which secc-ir cannot name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostfixOp {
    /// push a number
    Const(u64),
    /// push a symbol
    Sym(SymId),
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// floor(a / k)
    Div(u64),
    /// ceil(a / k)
    CeilDiv(u64),
    /// min(a, b)
    Min,
    /// max(a, b)
    Max,
}

impl DimExpr {
    /// A number.
    pub fn known(v: i64) -> Self {
        DimExpr {
            konst: v,
            terms: BTreeMap::new(),
        }
    }

    /// A symbol.
    pub fn sym(s: SymId) -> Self {
        Self::atom(Atom::Sym(s))
    }

    fn atom(a: Atom) -> Self {
        DimExpr {
            konst: 0,
            terms: BTreeMap::from([(vec![a], 1)]),
        }
    }

    /// The value if the expression is a number.
    pub fn as_known(&self) -> Option<i64> {
        self.terms.is_empty().then_some(self.konst)
    }

    /// `(s, k)` if the expression is `k * s` for one symbol and `k >= 1`.
    pub fn as_linear_sym(&self) -> Option<(SymId, u64)> {
        if self.konst != 0 || self.terms.len() != 1 {
            return None;
        }
        let (m, &c) = self.terms.iter().next()?;
        match m.as_slice() {
            [Atom::Sym(s)] if c >= 1 => Some((*s, c as u64)),
            _ => None,
        }
    }

    /// The exact quotient `self / o` where the canonical forms show it: by a constant that
    /// divides every coefficient, by one term `c * m` that divides every term, or a
    /// constant multiple of `o`. `None` otherwise (not necessarily inexact).
    pub fn div_exact(&self, o: &DimExpr) -> Option<DimExpr> {
        if let Some(k) = o.as_known() {
            let ok = k != 0 && self.konst % k == 0 && self.terms.values().all(|c| c % k == 0);
            return ok.then(|| self.scale_div(k));
        }
        if o.konst == 0 && o.terms.len() == 1 && self.konst == 0 {
            let (m, &c) = o.terms.iter().next()?;
            let mut q = DimExpr::default();
            for (t, &d) in &self.terms {
                let rest = remove_factors(t, m)?;
                if d % c != 0 {
                    return None;
                }
                q = q.add(
                    &DimExpr {
                        konst: 0,
                        terms: BTreeMap::from([(rest, d / c)]),
                    }
                    .normalise_empty(),
                )?;
            }
            return Some(q);
        }
        let (m, &c) = o.terms.iter().next()?;
        let d = *self.terms.get(m)?;
        (d % c == 0)
            .then(|| d / c)
            .and_then(|r| (o.scale(r)? == *self).then(|| DimExpr::known(r)))
    }

    /// Divides every coefficient by `k` (which divides them all).
    fn scale_div(&self, k: i64) -> DimExpr {
        DimExpr {
            konst: self.konst / k,
            terms: self.terms.iter().map(|(m, c)| (m.clone(), c / k)).collect(),
        }
    }

    /// Moves a term over the empty monomial into the constant.
    fn normalise_empty(mut self) -> DimExpr {
        if let Some(c) = self.terms.remove(&Vec::new()) {
            self.konst += c;
        }
        self
    }

    /// True when every coefficient is non-negative (then so is the value, for any binding
    /// of non-negative symbols).
    pub fn is_nonneg(&self) -> bool {
        self.konst >= 0 && self.terms.values().all(|&c| c >= 0)
    }

    /// The least value at any binding of symbols to extents (every symbol >= 1), when the
    /// form shows one: every coefficient but the constant's non-negative and every atom
    /// defined (its operands' least values >= 0) at every binding. Floor, ceil, min and max
    /// are monotone, so their least values are those of their operands'. `None` when the
    /// form shows no bound (it may still have one).
    pub fn min_value(&self) -> Option<i128> {
        let mut v = self.konst as i128;
        for (m, &c) in &self.terms {
            if c < 0 {
                return None;
            }
            let mut t = c as i128;
            for a in m {
                t = t.checked_mul(atom_min(a)?)?;
            }
            v = v.checked_add(t)?;
        }
        Some(v)
    }

    /// `self + o`; `None` on coefficient overflow.
    pub fn add(&self, o: &DimExpr) -> Option<DimExpr> {
        let mut r = self.clone();
        r.konst = r.konst.checked_add(o.konst)?;
        for (m, c) in &o.terms {
            let e = r.terms.entry(m.clone()).or_insert(0);
            *e = e.checked_add(*c)?;
            if *e == 0 {
                r.terms.remove(m);
            }
        }
        Some(r)
    }

    /// `self - o`.
    pub fn sub(&self, o: &DimExpr) -> Option<DimExpr> {
        self.add(&o.scale(-1)?)
    }

    /// `k * self`.
    pub fn scale(&self, k: i64) -> Option<DimExpr> {
        if k == 0 {
            return Some(Self::known(0));
        }
        let mut terms = BTreeMap::new();
        for (m, c) in &self.terms {
            terms.insert(m.clone(), c.checked_mul(k)?);
        }
        Some(DimExpr {
            konst: self.konst.checked_mul(k)?,
            terms,
        })
    }

    /// `self * o` (a polynomial product).
    pub fn mul(&self, o: &DimExpr) -> Option<DimExpr> {
        let mut r = o.scale(self.konst)?;
        for (m, c) in &self.terms {
            let mut part = DimExpr {
                konst: 0,
                terms: BTreeMap::new(),
            };
            if o.konst != 0 {
                part.terms.insert(m.clone(), c.checked_mul(o.konst)?);
            }
            for (n, d) in &o.terms {
                let mut mn: Monomial = m.iter().chain(n).cloned().collect();
                mn.sort();
                let e = part.terms.entry(mn).or_insert(0);
                *e = e.checked_add(c.checked_mul(*d)?)?;
            }
            part.terms.retain(|_, c| *c != 0);
            r = r.add(&part)?;
        }
        Some(r)
    }

    /// `floor(self / k)`, exact where it can be: terms whose coefficients `k` divides come
    /// out of the division (`floor((k X + r) / k) = X + floor(r / k)` for integer `X`).
    pub fn div_floor(&self, k: u64) -> Option<DimExpr> {
        self.divide(k, false)
    }

    /// `ceil(self / k)`, simplified like [`DimExpr::div_floor`].
    pub fn div_ceil(&self, k: u64) -> Option<DimExpr> {
        self.divide(k, true)
    }

    fn divide(&self, k: u64, ceil: bool) -> Option<DimExpr> {
        let ki = i64::try_from(k).ok().filter(|&k| k >= 1)?;
        if ki == 1 {
            return Some(self.clone());
        }
        // floor(floor(e / a) / k) = floor(e / (a k)), and so for ceil, over the same e >= 0
        // (a chain of strided convolutions stays one division)
        if let (0, Some((m, 1))) = (self.konst, self.terms.iter().next()) {
            if let (1, [Atom::FloorDiv(e, a) | Atom::CeilDiv(e, a)]) = (self.terms.len(), &m[..]) {
                if ceil == matches!(m[0], Atom::CeilDiv(..)) {
                    return e.divide(a.checked_mul(k)?, ceil);
                }
            }
        }
        let (whole, rest): (Vec<_>, Vec<_>) = self.terms.iter().partition(|(_, c)| *c % ki == 0);
        if rest.is_empty() {
            let konst = if ceil {
                self.konst.checked_add(ki - 1)?.div_euclid(ki)
            } else {
                self.konst.div_euclid(ki)
            };
            let terms = whole
                .into_iter()
                .map(|(m, c)| (m.clone(), c / ki))
                .collect();
            return Some(DimExpr { konst, terms });
        }
        // Terms k divides come out of the division only when what stays inside cannot be
        // negative (positive coefficients, a constant >= 0): an atom is defined only over a
        // non-negative value, as the artifact's unsigned reader computes it.
        let safe = rest.iter().all(|(_, c)| **c > 0) && self.konst >= 0;
        let (q, inner) = if safe {
            let q = DimExpr {
                konst: 0,
                terms: whole
                    .into_iter()
                    .map(|(m, c)| (m.clone(), c / ki))
                    .collect(),
            };
            let inner = DimExpr {
                konst: self.konst,
                terms: rest.into_iter().map(|(m, c)| (m.clone(), *c)).collect(),
            };
            (q, inner)
        } else {
            (Self::known(0), self.clone())
        };
        let atom = if ceil {
            Atom::CeilDiv(Box::new(inner), k)
        } else {
            Atom::FloorDiv(Box::new(inner), k)
        };
        q.add(&Self::atom(atom))
    }

    /// `min(self, o)`: a number when both are, the smaller when they differ by a constant.
    pub fn minimum(&self, o: &DimExpr) -> Option<DimExpr> {
        self.extremum(o, false)
    }

    /// `max(self, o)`, simplified like [`DimExpr::minimum`].
    pub fn maximum(&self, o: &DimExpr) -> Option<DimExpr> {
        self.extremum(o, true)
    }

    fn extremum(&self, o: &DimExpr, max: bool) -> Option<DimExpr> {
        if let Some(d) = self.sub(o)?.as_known() {
            let self_bigger = d >= 0;
            return Some(if self_bigger == max { self } else { o }.clone());
        }
        let (a, b) = if self <= o { (self, o) } else { (o, self) };
        let (a, b) = (Box::new(a.clone()), Box::new(b.clone()));
        Some(Self::atom(if max {
            Atom::Max(a, b)
        } else {
            Atom::Min(a, b)
        }))
    }

    /// The value under a binding (symbol `i` = `syms[i]`); `None` if a symbol is unbound,
    /// an intermediate value or the result is negative, or it overflows.
    pub fn eval(&self, syms: &[u64]) -> Option<u64> {
        u64::try_from(self.eval_signed(syms)?).ok()
    }

    fn eval_signed(&self, syms: &[u64]) -> Option<i128> {
        let mut v = self.konst as i128;
        for (m, c) in &self.terms {
            let mut t = *c as i128;
            for a in m {
                t = t.checked_mul(eval_atom(a, syms)?)?;
            }
            v = v.checked_add(t)?;
        }
        (v.unsigned_abs() <= u64::MAX as u128).then_some(v)
    }

    /// Symbols the expression mentions, sorted, each once.
    pub fn symbols(&self) -> Vec<SymId> {
        let mut out = vec![];
        self.collect_symbols(&mut out);
        out.sort();
        out.dedup();
        out
    }

    fn collect_symbols(&self, out: &mut Vec<SymId>) {
        for a in self.terms.keys().flatten() {
            match a {
                Atom::Sym(s) => out.push(*s),
                Atom::FloorDiv(e, _) | Atom::CeilDiv(e, _) => e.collect_symbols(out),
                Atom::Min(a, b) | Atom::Max(a, b) => {
                    a.collect_symbols(out);
                    b.collect_symbols(out);
                }
            }
        }
    }

    /// Writes the expression as postfix steps: the positive terms, then each negative term
    /// subtracted (so an unsigned reader only underflows where the value is negative).
    pub fn postfix(&self, out: &mut Vec<PostfixOp>) {
        let pos: Vec<_> = self.terms.iter().filter(|(_, c)| **c > 0).collect();
        let neg: Vec<_> = self.terms.iter().filter(|(_, c)| **c < 0).collect();
        let mut first = true;
        let push_term = |out: &mut Vec<PostfixOp>, m: &Monomial, c: u64, first: &mut bool| {
            for (i, a) in m.iter().enumerate() {
                atom_postfix(a, out);
                if i > 0 {
                    out.push(PostfixOp::Mul);
                }
            }
            if c != 1 {
                out.push(PostfixOp::Const(c));
                out.push(PostfixOp::Mul);
            }
            if !std::mem::replace(first, false) {
                out.push(PostfixOp::Add);
            }
        };
        for (m, c) in &pos {
            push_term(out, m, c.unsigned_abs(), &mut first);
        }
        if self.konst > 0 || first {
            out.push(PostfixOp::Const(self.konst.max(0) as u64));
            if !std::mem::replace(&mut first, false) {
                out.push(PostfixOp::Add);
            }
        }
        for (m, c) in &neg {
            let mut f = true; // the term on its own, then subtracted
            push_term(out, m, c.unsigned_abs(), &mut f);
            out.push(PostfixOp::Sub);
        }
        if self.konst < 0 {
            out.push(PostfixOp::Const(self.konst.unsigned_abs()));
            out.push(PostfixOp::Sub);
        }
    }

    /// Infix text with the graph's symbol names: `2*H - 1`, `(H - 1) / 2 + 1`.
    pub fn display(&self, names: &[String]) -> String {
        let mut s = String::new();
        for (m, c) in &self.terms {
            let (sign, mag) = (if *c < 0 { "-" } else { "+" }, c.unsigned_abs());
            // a division inside a product is parenthesised: 2*((H - 1) / 2)
            let alone = m.len() == 1 && mag == 1;
            let body: Vec<String> = m
                .iter()
                .map(|a| match a {
                    Atom::FloorDiv(..) | Atom::CeilDiv(..) if !alone => {
                        format!("({})", atom_display(a, names))
                    }
                    _ => atom_display(a, names),
                })
                .collect();
            let body = body.join("*");
            let term = if mag == 1 {
                body
            } else {
                format!("{mag}*{body}")
            };
            if s.is_empty() {
                let _ = write!(s, "{}{term}", if *c < 0 { "-" } else { "" });
            } else {
                let _ = write!(s, " {sign} {term}");
            }
        }
        match (s.is_empty(), self.konst) {
            (true, k) => k.to_string(),
            (false, 0) => s,
            (false, k) if k < 0 => format!("{s} - {}", k.unsigned_abs()),
            (false, k) => format!("{s} + {k}"),
        }
    }
}

/// `t` without one occurrence of each atom of `m`, `None` if `m` does not divide `t`.
fn remove_factors(t: &Monomial, m: &Monomial) -> Option<Monomial> {
    let mut rest = t.clone();
    for a in m {
        let i = rest.iter().position(|b| b == a)?;
        rest.remove(i);
    }
    Some(rest)
}

fn eval_atom(a: &Atom, syms: &[u64]) -> Option<i128> {
    let nonneg = |e: &DimExpr| e.eval_signed(syms).filter(|v| *v >= 0);
    Some(match a {
        Atom::Sym(s) => *syms.get(s.0 as usize)? as i128,
        Atom::FloorDiv(e, k) => nonneg(e)? / *k as i128,
        Atom::CeilDiv(e, k) => (nonneg(e)? + *k as i128 - 1) / *k as i128,
        Atom::Min(a, b) => nonneg(a)?.min(nonneg(b)?),
        Atom::Max(a, b) => nonneg(a)?.max(nonneg(b)?),
    })
}

/// The least value of an atom at any binding of symbols >= 1 ([`DimExpr::min_value`]).
fn atom_min(a: &Atom) -> Option<i128> {
    let nonneg = |e: &DimExpr| e.min_value().filter(|v| *v >= 0);
    Some(match a {
        Atom::Sym(_) => 1,
        Atom::FloorDiv(e, k) => nonneg(e)? / *k as i128,
        Atom::CeilDiv(e, k) => (nonneg(e)? + *k as i128 - 1) / *k as i128,
        Atom::Min(a, b) => nonneg(a)?.min(nonneg(b)?),
        Atom::Max(a, b) => nonneg(a)?.max(nonneg(b)?),
    })
}

fn atom_postfix(a: &Atom, out: &mut Vec<PostfixOp>) {
    match a {
        Atom::Sym(s) => out.push(PostfixOp::Sym(*s)),
        Atom::FloorDiv(e, k) => {
            e.postfix(out);
            out.push(PostfixOp::Div(*k));
        }
        Atom::CeilDiv(e, k) => {
            e.postfix(out);
            out.push(PostfixOp::CeilDiv(*k));
        }
        Atom::Min(a, b) => {
            a.postfix(out);
            b.postfix(out);
            out.push(PostfixOp::Min);
        }
        Atom::Max(a, b) => {
            a.postfix(out);
            b.postfix(out);
            out.push(PostfixOp::Max);
        }
    }
}

fn atom_display(a: &Atom, names: &[String]) -> String {
    let paren = |e: &DimExpr| {
        let s = e.display(names);
        if e.terms.len() + usize::from(e.konst != 0) > 1 || s.starts_with('-') {
            format!("({s})")
        } else {
            s
        }
    };
    match a {
        Atom::Sym(s) => names
            .get(s.0 as usize)
            .cloned()
            .unwrap_or_else(|| format!("s{}", s.0)),
        Atom::FloorDiv(e, k) => format!("{} / {k}", paren(e)),
        Atom::CeilDiv(e, k) => format!("{} /^ {k}", paren(e)),
        Atom::Min(a, b) => format!("min({}, {})", a.display(names), b.display(names)),
        Atom::Max(a, b) => format!("max({}, {})", a.display(names), b.display(names)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> DimExpr {
        DimExpr::sym(SymId(1))
    }
    fn n() -> DimExpr {
        DimExpr::sym(SymId(0))
    }
    fn k(v: i64) -> DimExpr {
        DimExpr::known(v)
    }
    fn names() -> Vec<String> {
        vec!["N".into(), "H".into()]
    }
    /// evaluates the postfix form the way the artifact reader does (unsigned, checked)
    fn run_postfix(e: &DimExpr, syms: &[u64]) -> Option<u64> {
        let mut ops = vec![];
        e.postfix(&mut ops);
        let mut st: Vec<u64> = vec![];
        for op in ops {
            let v = match op {
                PostfixOp::Const(v) => v,
                PostfixOp::Sym(s) => syms[s.0 as usize],
                PostfixOp::Div(d) => st.pop()? / d,
                PostfixOp::CeilDiv(d) => st.pop()?.div_ceil(d),
                _ => {
                    let b = st.pop()?;
                    let a = st.pop()?;
                    match op {
                        PostfixOp::Add => a.checked_add(b)?,
                        PostfixOp::Sub => a.checked_sub(b)?,
                        PostfixOp::Mul => a.checked_mul(b)?,
                        PostfixOp::Min => a.min(b),
                        _ => a.max(b),
                    }
                }
            };
            st.push(v);
        }
        (st.len() == 1).then(|| st[0])
    }

    /// floor((H + pb + pe - d (k - 1) - 1) / s) + 1, as a conv's shape rule writes it
    fn conv_out(x: &DimExpr, pads: i64, kk: i64, s: u64) -> DimExpr {
        x.add(&k(pads - (kk - 1) - 1))
            .unwrap()
            .div_floor(s)
            .unwrap()
            .add(&k(1))
            .unwrap()
    }

    #[test]
    fn conv_shapes_simplify_where_exact() {
        // 3x3, pad 1, stride 1: exactly H
        assert_eq!(conv_out(&h(), 2, 3, 1), h());
        // 1x1 stride 2: (H - 1) / 2 + 1 stays a division
        let e = conv_out(&h(), 0, 1, 2);
        assert_eq!(e.display(&names()), "(H - 1) / 2 + 1");
        for v in 1..20u64 {
            assert_eq!(e.eval(&[1, v]), Some((v - 1) / 2 + 1));
            assert_eq!(run_postfix(&e, &[1, v]), e.eval(&[1, v]), "H = {v}");
        }
        // 3x3 valid: H - 2, undefined below 2
        let v = conv_out(&h(), 0, 3, 1);
        assert_eq!(v.display(&names()), "H - 2");
        assert_eq!(v.eval(&[1, 1]), None);
        assert_eq!(run_postfix(&v, &[1, 1]), None);
        assert_eq!(v.eval(&[1, 5]), Some(3));
        // exact division: (4H + 8) / 4 = H + 2; a 2x upsample then a stride-2 conv: H
        assert_eq!(
            h().scale(4)
                .unwrap()
                .add(&k(8))
                .unwrap()
                .div_floor(4)
                .unwrap(),
            h().add(&k(2)).unwrap()
        );
        assert_eq!(conv_out(&h().scale(2).unwrap(), 2, 3, 2), h());
    }

    #[test]
    fn equal_polynomials_compare_equal() {
        let a = h().add(&n()).unwrap().mul(&h().sub(&n()).unwrap()).unwrap();
        let b = h().mul(&h()).unwrap().sub(&n().mul(&n()).unwrap()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.display(&names()), "-N*N + H*H");
        assert_eq!(a.eval(&[2, 5]), Some(21));
        assert_eq!(run_postfix(&a, &[2, 5]), Some(21));
        assert_eq!(h().sub(&h()).unwrap(), k(0));
        assert_eq!(h().mul(&k(0)).unwrap(), k(0));
        assert_eq!(a.symbols(), vec![SymId(0), SymId(1)]);
    }

    #[test]
    fn exact_division() {
        let nh = n().mul(&h()).unwrap().scale(6).unwrap();
        assert_eq!(nh.div_exact(&n()).unwrap(), h().scale(6).unwrap());
        assert_eq!(nh.div_exact(&n().mul(&h()).unwrap()).unwrap(), k(6));
        assert_eq!(
            nh.div_exact(&k(3)).unwrap(),
            n().mul(&h()).unwrap().scale(2).unwrap()
        );
        assert_eq!(nh.div_exact(&k(4)), None);
        let h1 = h().add(&k(1)).unwrap();
        assert_eq!(h1.scale(2).unwrap().div_exact(&h1).unwrap(), k(2));
        assert_eq!(h1.div_exact(&h()), None);
        assert_eq!(h().scale(3).unwrap().as_linear_sym(), Some((SymId(1), 3)));
        assert_eq!(h1.as_linear_sym(), None);
    }

    #[test]
    fn min_max_and_ceil() {
        assert_eq!(h().minimum(&h().add(&k(3)).unwrap()).unwrap(), h());
        assert_eq!(
            h().maximum(&h().add(&k(3)).unwrap()).unwrap(),
            h().add(&k(3)).unwrap()
        );
        let m = h().minimum(&n()).unwrap();
        assert_eq!(m, n().minimum(&h()).unwrap(), "operands are ordered");
        assert_eq!(m.eval(&[3, 7]), Some(3));
        let c = h().div_ceil(4).unwrap();
        assert_eq!(c.display(&names()), "H /^ 4");
        assert_eq!(c.eval(&[1, 9]), Some(3));
        assert_eq!(k(9).div_ceil(4).unwrap(), k(3));
        assert_eq!(k(-1).div_floor(2).unwrap(), k(-1), "floor, not truncation");
        let both = h()
            .maximum(&n())
            .unwrap()
            .add(&c)
            .unwrap()
            .scale(2)
            .unwrap();
        for (nv, hv) in [(1, 1), (4, 9), (9, 2)] {
            assert_eq!(run_postfix(&both, &[nv, hv]), both.eval(&[nv, hv]));
        }
        assert_eq!(both.display(&names()), "2*(H /^ 4) + 2*max(N, H)");
    }

    #[test]
    fn overflow_and_bad_divisors_are_none() {
        assert!(k(i64::MAX).add(&k(1)).is_none());
        assert!(h().scale(i64::MAX).unwrap().scale(2).is_none());
        assert!(h().div_floor(0).is_none());
        assert_eq!(h().eval(&[1]), None, "unbound symbol");
        let big = h().mul(&h()).unwrap().mul(&h()).unwrap();
        assert_eq!(big.eval(&[1, u64::MAX]), None);
    }

    /// Random expressions from every constructor, checked against plain integer arithmetic
    /// (and their postfix form against the reader's unsigned arithmetic) at random bindings.
    #[test]
    fn random_expressions_evaluate_like_integer_arithmetic() {
        let mut seed = 0x9E3779B97F4A7C15u64;
        let mut rnd = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for _ in 0..300 {
            // (expression, evaluator) pairs grown step by step
            type Ev = Box<dyn Fn(&[i128]) -> Option<i128>>;
            let mut pool: Vec<(DimExpr, Ev)> = vec![
                (n(), Box::new(|s: &[i128]| Some(s[0]))),
                (h(), Box::new(|s: &[i128]| Some(s[1]))),
            ];
            for _ in 0..6 {
                let a = rnd(pool.len() as u64) as usize;
                let b = rnd(pool.len() as u64) as usize;
                let c = rnd(5) as i64 + 1;
                let (ea, eb) = (pool[a].0.clone(), pool[b].0.clone());
                let (ga, gb) = (a, b);
                let op = rnd(7);
                let e = match op {
                    0 => ea.add(&eb),
                    1 => ea.sub(&eb),
                    2 => ea.mul(&eb),
                    3 => ea.div_floor(c as u64),
                    4 => ea.div_ceil(c as u64),
                    5 => ea.minimum(&eb),
                    _ => ea.add(&k(c)),
                };
                let Some(e) = e else { continue };
                // evaluate the operands through the expressions themselves (checked above)
                let (xa, xb) = (pool[ga].0.clone(), pool[gb].0.clone());
                let f: Ev = Box::new(move |s: &[i128]| {
                    let u: Vec<u64> = s.iter().map(|&v| v as u64).collect();
                    let (va, vb) = (xa.eval_signed(&u)?, xb.eval_signed(&u)?);
                    Some(match op {
                        0 => va + vb,
                        1 => va - vb,
                        2 => va * vb,
                        3 if va >= 0 => va.div_euclid(c as i128),
                        4 if va >= 0 => (va + c as i128 - 1).div_euclid(c as i128),
                        5 if va >= 0 && vb >= 0 => va.min(vb),
                        6 => va + c as i128,
                        _ => return None,
                    })
                });
                pool.push((e, f));
            }
            for _ in 0..4 {
                let syms = [rnd(9) + 1, rnd(40) + 1];
                let si: Vec<i128> = syms.iter().map(|&v| v as i128).collect();
                for (e, f) in &pool {
                    let want = f(&si).filter(|v| *v >= 0).map(|v| v as u64);
                    if let Some(w) = want {
                        assert_eq!(
                            e.eval(&syms),
                            Some(w),
                            "{} at {syms:?}",
                            e.display(&names())
                        );
                        assert_eq!(
                            run_postfix(e, &syms),
                            Some(w),
                            "postfix of {}",
                            e.display(&names())
                        );
                    }
                    // a least value is a bound at every binding, where all is defined
                    if let Some(m) = e.min_value() {
                        let v = e.eval_signed(&syms);
                        assert!(
                            v.is_some_and(|v| v >= m),
                            "{} = {v:?} at {syms:?}, below its least value {m}",
                            e.display(&names())
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn nested_divisions_are_one() {
        let e = h().sub(&k(1)).unwrap();
        let twice = e.div_floor(2).unwrap().div_floor(4).unwrap();
        assert_eq!(twice, e.div_floor(8).unwrap());
        let twice = e.div_ceil(3).unwrap().div_ceil(2).unwrap();
        assert_eq!(twice, e.div_ceil(6).unwrap());
        // floor of a ceil stays nested (not the same function)
        let mixed = e.div_ceil(2).unwrap().div_floor(2).unwrap();
        assert_eq!(mixed.display(&names()), "(H - 1) /^ 2 / 2");
    }

    #[test]
    fn least_values_at_symbols_of_at_least_one() {
        let k3 = |e: DimExpr| e.add(&k(3)).unwrap();
        assert_eq!(h().min_value(), Some(1));
        assert_eq!(k3(h()).sub(&k(5)).unwrap().min_value(), Some(-1));
        // (H - 1) / 2 + 3 >= 3: the padded window's rule, true at every H
        let half = h().sub(&k(1)).unwrap().div_floor(2).unwrap();
        assert_eq!(k3(half.clone()).min_value(), Some(3));
        assert_eq!(n().mul(&h()).unwrap().min_value(), Some(1));
        assert_eq!(half.minimum(&n()).unwrap().min_value(), Some(0));
        // a negative term or an atom of a possibly negative operand shows no bound
        assert_eq!(n().sub(&h()).unwrap().min_value(), None);
        let neg = h().sub(&k(2)).unwrap().div_ceil(2).unwrap();
        assert_eq!(neg.min_value(), None);
    }
}
