//! Constraints on symbol values that a graph's shape rules imply: a 3x3 valid convolution
//! needs `H >= 3`, two added operands need equal extents. The rules record them (see
//! `infer::Cx`) where they cannot decide at compile time; the graph keeps them with the
//! node that implied them, and the code generator writes them into the artifact, where the
//! runtime checks them when it binds the symbols.
use crate::types::Dim;

/// How the two sides of a [`Constraint`] relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rel {
    /// `lhs >= rhs`
    Ge,
    /// `lhs == rhs`
    Eq,
}

/// `lhs rel rhs`, implied by the node `origin`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Constraint {
    /// left side
    pub lhs: Dim,
    /// relation
    pub rel: Rel,
    /// right side
    pub rhs: Dim,
    /// the node that implied it: `node "Conv_3" (conv2d)`
    pub origin: String,
}

impl Constraint {
    /// Whether it holds under a binding (`None` if a side is undefined there).
    pub fn holds(&self, syms: &[u64]) -> Option<bool> {
        let (l, r) = (self.lhs.eval(syms)?, self.rhs.eval(syms)?);
        Some(match self.rel {
            Rel::Ge => l >= r,
            Rel::Eq => l == r,
        })
    }

    /// `H + 2 >= 3  (node "Conv_3" (conv2d))`.
    pub fn display(&self, names: &[String]) -> String {
        let rel = match self.rel {
            Rel::Ge => ">=",
            Rel::Eq => "==",
        };
        format!(
            "{} {rel} {}  ({})",
            self.lhs.display(names),
            self.rhs.display(names),
            self.origin
        )
    }
}
