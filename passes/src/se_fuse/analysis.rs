//! E-class facts: shape (with symbolic dims), whether the class is a constant expression,
//! and its scalar value when it is a one-element constant. Rule conditions read these.
use super::lang::SeLang;
use egg::{Analysis, DidMerge, EGraph, Symbol};
use secc_ir::Dim;
use std::collections::BTreeMap;

/// Facts about one e-class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Data {
    /// shape, when known
    pub shape: Option<Vec<Dim>>,
    /// a constant expression (leaf constant or a layout change of one)
    pub konst: bool,
    /// value of a one-element constant
    pub scalar: Option<f32>,
}

/// What the translator knows about a leaf.
#[derive(Debug, Clone)]
pub struct LeafInfo {
    /// shape
    pub shape: Vec<Dim>,
    /// constant?
    pub konst: bool,
    /// scalar value of a one-element constant
    pub scalar: Option<f32>,
}

/// The analysis; holds the leaf table filled by the translator.
#[derive(Debug, Default)]
pub struct SeAnalysis {
    /// leaf symbol -> facts
    pub leaves: BTreeMap<Symbol, LeafInfo>,
}

fn one() -> Dim {
    Dim::Known(1)
}

impl Analysis<SeLang> for SeAnalysis {
    type Data = Data;

    fn make(egraph: &mut EGraph<SeLang, Self>, enode: &SeLang, _id: egg::Id) -> Data {
        let d = |i: &egg::Id| egraph[*i].data.clone();
        let sh = |i: &egg::Id| egraph[*i].data.shape.clone();
        match enode {
            SeLang::Leaf(s) => match egraph.analysis.leaves.get(s) {
                Some(l) => Data {
                    shape: Some(l.shape.clone()),
                    konst: l.konst,
                    scalar: l.scalar,
                },
                None => Data::default(),
            },
            SeLang::Kind(_) | SeLang::NoBias => Data {
                shape: None,
                konst: true,
                scalar: None,
            },
            SeLang::Gap(x) | SeLang::MeanHw(x) | SeLang::SumHw(x) => Data {
                shape: sh(x)
                    .filter(|s| s.len() == 4)
                    .map(|s| vec![s[0], s[1], one(), one()]),
                ..Data::default()
            },
            SeLang::MeanHwFlat(x) | SeLang::SumHwFlat(x) => Data {
                shape: sh(x).filter(|s| s.len() == 4).map(|s| vec![s[0], s[1]]),
                ..Data::default()
            },
            SeLang::To2d(x) => Data {
                shape: sh(x)
                    .filter(|s| s.len() == 4 && s[2] == one() && s[3] == one())
                    .map(|s| vec![s[0], s[1]]),
                ..d(x)
            },
            SeLang::To4d(x) => Data {
                shape: sh(x)
                    .filter(|s| s.len() == 2)
                    .map(|s| vec![s[0], s[1], one(), one()]),
                ..d(x)
            },
            SeLang::Dense([x, w, _]) => Data {
                shape: match (sh(x), sh(w)) {
                    (Some(a), Some(b)) if a.len() == 2 && b.len() == 2 => Some(vec![a[0], b[0]]),
                    _ => None,
                },
                ..Data::default()
            },
            SeLang::Conv1x1([x, w, _]) => Data {
                shape: match (sh(x), sh(w)) {
                    (Some(a), Some(b)) if a.len() == 4 && b.len() == 4 => {
                        Some(vec![a[0], b[0], a[2], a[3]])
                    }
                    _ => None,
                },
                ..Data::default()
            },
            SeLang::MatMul(_) => Data::default(),
            SeLang::Add([a, b]) | SeLang::Mul([a, b]) | SeLang::Div([a, b]) => Data {
                shape: match (sh(a), sh(b)) {
                    (Some(a), Some(b)) => {
                        secc_ir::broadcast_shapes(&a, &b).ok().map(|s| s.to_vec())
                    }
                    _ => None,
                },
                ..Data::default()
            },
            SeLang::Act([_, x]) => Data {
                shape: sh(x),
                ..Data::default()
            },
            SeLang::Se(c) => Data {
                shape: sh(&c[0]),
                ..Data::default()
            },
            SeLang::SeGate(c) => Data {
                shape: sh(&c[0]).filter(|s| s.len() == 4).map(|s| vec![s[0], s[1]]),
                ..Data::default()
            },
            SeLang::GatedConv([x, _, w, _]) => Data {
                shape: match (sh(x), sh(w)) {
                    (Some(a), Some(b)) if a.len() == 4 && b.len() == 4 => {
                        Some(vec![a[0], b[0], a[2], a[3]])
                    }
                    _ => None,
                },
                ..Data::default()
            },
            SeLang::Shared(x) | SeLang::Shared2(x) => d(x),
            SeLang::T(w) => Data {
                shape: sh(w).filter(|s| s.len() == 2).map(|s| vec![s[1], s[0]]),
                konst: d(w).konst,
                scalar: None,
            },
            SeLang::Flat(w) => Data {
                shape: sh(w)
                    .and_then(|s| s.iter().try_fold(Dim::Known(1), |a, &b| a.checked_mul(b)))
                    .map(|n| vec![n]),
                konst: d(w).konst,
                scalar: None,
            },
            SeLang::W2d(w) => Data {
                shape: sh(w)
                    .filter(|s| s.len() == 4 && s[2] == one() && s[3] == one())
                    .map(|s| vec![s[0], s[1]]),
                konst: d(w).konst,
                scalar: None,
            },
        }
    }

    fn merge(&mut self, to: &mut Data, from: Data) -> DidMerge {
        let mut a = false;
        let mut b = false;
        if to.shape.is_none() && from.shape.is_some() {
            to.shape = from.shape;
            a = true;
        } else if from.shape.is_none() && to.shape.is_some() {
            b = true;
        }
        if !to.konst && from.konst {
            to.konst = true;
            a = true;
        } else if to.konst && !from.konst {
            b = true;
        }
        if to.scalar.is_none() && from.scalar.is_some() {
            to.scalar = from.scalar;
            a = true;
        }
        DidMerge(a, b)
    }
}
