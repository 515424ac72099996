//! The rewrite rules: first canonicalise exporter spellings (pooling, FC layers written as
//! Gemm / MatMul+Add / 1x1 Conv, bias Adds, reshape glue, SiLU and hard-sigmoid written out),
//! then one rule (in both operand orders of the final Mul) recognises an SE block.
//! Rules are directional; the only commutation is "constant operand second", and it is
//! conditional, so the e-graph stays small.
use super::analysis::SeAnalysis;
use super::lang::{ActKind, SeLang};
use egg::{rewrite as rw, EGraph, Id, Rewrite, Subst, Var};
use secc_ir::Dim;

type EG = EGraph<SeLang, SeAnalysis>;

pub(crate) fn var(s: &str) -> Var {
    s.parse()
        .expect("invariant: pattern variable names are valid")
}

fn shape(eg: &EG, s: &Subst, v: &str) -> Option<Vec<Dim>> {
    eg[s[var(v)]].data.shape.clone()
}

fn is_const(v: &'static str) -> impl Fn(&mut EG, Id, &Subst) -> bool {
    move |eg, _, s| eg[s[var(v)]].data.konst
}

fn not_const(v: &'static str) -> impl Fn(&mut EG, Id, &Subst) -> bool {
    move |eg, _, s| !eg[s[var(v)]].data.konst
}

fn scalar_is(v: &'static str, want: f32, tol: f32) -> impl Fn(&mut EG, Id, &Subst) -> bool {
    move |eg, _, s| {
        eg[s[var(v)]]
            .data
            .scalar
            .is_some_and(|x| (x - want).abs() <= tol)
    }
}

pub(crate) fn is_nobias(eg: &EG, id: Id) -> bool {
    eg[id].nodes.iter().any(|n| matches!(n, SeLang::NoBias))
}

/// The activation kind stored in a class, if it is a `Kind` leaf.
pub fn kind_of(eg: &EG, id: Id) -> Option<ActKind> {
    eg[id].nodes.iter().find_map(|n| match n {
        SeLang::Kind(k) => Some(*k),
        _ => None,
    })
}

/// `?x` is a 2-D value and `?w` a 2-D constant.
fn matmul_is_dense(eg: &mut EG, _: Id, s: &Subst) -> bool {
    let x = shape(eg, s, "?x");
    let w = shape(eg, s, "?w");
    eg[s[var("?w")]].data.konst
        && x.is_some_and(|x| x.len() == 2)
        && w.is_some_and(|w| w.len() == 2)
}

/// `?b` is a constant that broadcasts along the last axis only, with as many elements as
/// the dense layer has outputs.
fn dense_bias(eg: &mut EG, _: Id, s: &Subst) -> bool {
    let (Some(b), Some(w)) = (shape(eg, s, "?b"), shape(eg, s, "?w")) else {
        return false;
    };
    eg[s[var("?b")]].data.konst
        && w.len() == 2
        && !b.is_empty()
        && b.len() <= 2
        && b[b.len() - 1] == w[0]
        && b[..b.len() - 1].iter().all(|d| *d == Dim::Known(1))
}

/// `?b` is a constant of shape `[1, O, 1, 1]` or `[O, 1, 1]` for a conv with O outputs.
fn conv_bias(eg: &mut EG, _: Id, s: &Subst) -> bool {
    let (Some(b), Some(w)) = (shape(eg, s, "?b"), shape(eg, s, "?w")) else {
        return false;
    };
    let one = Dim::Known(1);
    eg[s[var("?b")]].data.konst
        && w.len() == 4
        && (b.len() == 3 || b.len() == 4)
        && b[b.len() - 3] == w[0]
        && b[b.len() - 2] == one
        && b[b.len() - 1] == one
        && (b.len() == 3 || b[0] == one)
}

/// `?k` is a scalar constant equal to `H * W` of `?x` (known extents), or to its reciprocal
/// when `recip`: a sum over the map times `1 / (H * W)`, or divided by `H * W`, is the mean.
fn pixel_count(recip: bool) -> impl Fn(&mut EG, Id, &Subst) -> bool {
    move |eg, _, s| {
        let Some(x) = shape(eg, s, "?x").filter(|x| x.len() == 4) else {
            return false;
        };
        let Some(hw) = x[2]
            .known()
            .zip(x[3].known())
            .and_then(|(h, w)| h.checked_mul(w))
        else {
            return false;
        };
        let hw = hw as f64;
        let want = if recip { 1.0 / hw } else { hw };
        eg[s[var("?k")]]
            .data
            .scalar
            .is_some_and(|k| ((k as f64) - want).abs() <= want * 1e-6)
    }
}

/// `?x` is `[N, C, 1, 1]` and `?w` a constant `[O, C, 1, 1]`.
fn conv_on_pooled(eg: &mut EG, _: Id, s: &Subst) -> bool {
    let one = Dim::Known(1);
    let (Some(x), Some(w)) = (shape(eg, s, "?x"), shape(eg, s, "?w")) else {
        return false;
    };
    eg[s[var("?w")]].data.konst
        && x.len() == 4
        && x[2] == one
        && x[3] == one
        && w.len() == 4
        && w[1] == x[1]
}

/// `?w` is a constant `[O, C, 1, 1]` over a map `[N, C, H, W]` (`?x`, the SE block's input):
/// the convolution that consumes an SE block's output, which can take the scale.
fn conv_takes_scale(eg: &mut EG, _: Id, s: &Subst) -> bool {
    let (Some(x), Some(w)) = (shape(eg, s, "?x"), shape(eg, s, "?w")) else {
        return false;
    };
    eg[s[var("?w")]].data.konst && x.len() == 4 && w.len() == 4 && w[1] == x[1]
}

/// The matched SE block has consistent weights: x `[N,C,H,W]`, w1 `[R,C]`, w2 `[C,R]`,
/// biases of R and C elements (or none), a gate activation that ends in [0,1].
pub fn se_ok(eg: &mut EG, _: Id, s: &Subst) -> bool {
    se_check(eg, s).is_ok()
}

/// [`se_ok`] with the reason a match is refused (for `secc explain`).
pub fn se_check(eg: &EG, s: &Subst) -> Result<(), String> {
    let Some(x) = shape(eg, s, "?x").filter(|x| x.len() == 4) else {
        return Err("the multiplied tensor's shape is not a known 4-D NCHW shape".into());
    };
    let Some(c) = x[1].known() else {
        return Err("the channel count of the multiplied tensor is not known".into());
    };
    let (Some(w1), Some(w2)) = (shape(eg, s, "?w1"), shape(eg, s, "?w2")) else {
        return Err("the shape of an FC weight is unknown".into());
    };
    let fmt = |w: &[Dim]| format!("{w:?}");
    if w1.len() != 2
        || w2.len() != 2
        || w1[1] != x[1]
        || w2[0] != x[1]
        || w2[1] != w1[0]
        || w1[0].known().is_none()
    {
        return Err(format!(
            "the FC weights {} and {} do not map {c} channels to R and back",
            fmt(&w1),
            fmt(&w2)
        ));
    }
    if !(eg[s[var("?w1")]].data.konst && eg[s[var("?w2")]].data.konst) {
        return Err("an FC weight is computed at run time, not a constant".into());
    }
    let r = w1[0];
    for (b, n) in [("?b1", r), ("?b2", x[1])] {
        let id = s[var(b)];
        if !is_nobias(eg, id)
            && (eg[id].data.shape.as_deref() != Some(&[n][..]) || !eg[id].data.konst)
        {
            return Err(format!("an FC bias is not a constant of {n:?} elements"));
        }
    }
    match (kind_of(eg, s[var("?i")]), kind_of(eg, s[var("?g")])) {
        (Some(_), Some(g)) if g.is_gate() => Ok(()),
        (Some(_), Some(g)) => Err(format!(
            "the gate activation is {g}, not one that ends in [0, 1] (sigmoid or hard sigmoid)"
        )),
        _ => Err("an activation of the block is not one the rules know".into()),
    }
}

/// The steps of an SE body from the pool outwards: the first is the pool, each later one
/// wraps the previous term at `?h`. [`se_body`] nests them into the pattern the `se` rule
/// matches, and `secc explain` walks the same steps forward from each pool.
pub const SE_STEPS: [(&str, &str); 7] = [
    ("(gap ?x)", "global average pool"),
    ("(to2d ?h)", "flatten to [N, C]"),
    (
        "(dense ?h ?w1 ?b1)",
        "squeeze layer (FC or 1x1 conv, C -> R)",
    ),
    ("(act ?i ?h)", "activation after the squeeze layer"),
    (
        "(dense ?h ?w2 ?b2)",
        "excitation layer (FC or 1x1 conv, R -> C)",
    ),
    ("(act ?g ?h)", "gate activation (sigmoid or hard sigmoid)"),
    ("(to4d ?h)", "reshape of the gate to [N, C, 1, 1]"),
];

/// The SE body pattern: [`SE_STEPS`] nested, the pool innermost.
pub fn se_body() -> String {
    SE_STEPS[1..]
        .iter()
        .fold(SE_STEPS[0].0.to_string(), |acc, (step, _)| {
            step.replace("?h", &acc)
        })
}

/// All rules, canonicalisation first.
#[rustfmt::skip]
pub fn rules() -> Vec<Rewrite<SeLang, SeAnalysis>> {
    let body = se_body();
    let se_a = format!("(mul ?x {body})");
    let se_b = format!("(mul {body} ?x)");
    let se_to: egg::Pattern<SeLang> = "(se ?x ?w1 ?b1 ?w2 ?b2 ?i ?g)".parse().expect("invariant: valid pattern");
    vec![
        rw!("mean-hw-is-gap";     "(mean_hw ?x)"                          => "(gap ?x)"),
        rw!("mean-hw-flat";       "(mean_hw_flat ?x)"                     => "(to2d (gap ?x))"),
        rw!("sum-hw-times-1/hw";  "(mul (sum_hw ?x) ?k)"                  => "(gap ?x)" if pixel_count(true)),
        rw!("sum-hw-over-hw";     "(div (sum_hw ?x) ?k)"                  => "(gap ?x)" if pixel_count(false)),
        rw!("sum-hw-flat-times";  "(mul (sum_hw_flat ?x) ?k)"             => "(to2d (gap ?x))" if pixel_count(true)),
        rw!("sum-hw-flat-over";   "(div (sum_hw_flat ?x) ?k)"             => "(to2d (gap ?x))" if pixel_count(false)),
        rw!("to2d-of-to4d";       "(to2d (to4d ?x))"                      => "?x"),
        rw!("to4d-of-to2d";       "(to4d (to2d ?x))"                      => "?x"),
        rw!("act-through-to4d";   "(act ?k (to4d ?x))"                    => "(to4d (act ?k ?x))"),
        rw!("add-const-second";   "(add ?c ?x)"                           => "(add ?x ?c)" if is_const("?c") if not_const("?x")),
        rw!("mul-const-second";   "(mul ?c ?x)"                           => "(mul ?x ?c)" if is_const("?c") if not_const("?x")),
        rw!("matmul-is-dense";    "(matmul ?x ?w)"                        => "(dense ?x (t ?w) nobias)" if matmul_is_dense),
        rw!("dense-bias-add";     "(add (dense ?x ?w nobias) ?b)"         => "(dense ?x ?w (flat ?b))" if dense_bias),
        rw!("conv-bias-add";      "(add (conv1x1 ?x ?w nobias) ?b)"       => "(conv1x1 ?x ?w (flat ?b))" if conv_bias),
        rw!("conv1x1-is-dense";   "(conv1x1 ?x ?w ?b)"                    => "(to4d (dense (to2d ?x) (w2d ?w) ?b))" if conv_on_pooled),
        rw!("silu";               "(mul (shared2 ?t) (act sigmoid (shared2 ?t)))" => "(act silu ?t)"),
        rw!("silu-rev";           "(mul (act sigmoid (shared2 ?t)) (shared2 ?t))" => "(act silu ?t)"),
        rw!("hard-sigmoid-div";   "(div (act relu6 (add ?t ?c3)) ?c6)"    => "(act hard_sigmoid:0.16666667:0.5 ?t)" if scalar_is("?c3", 3.0, 0.0) if scalar_is("?c6", 6.0, 0.0)),
        rw!("hard-sigmoid-mul";   "(mul (act relu6 (add ?t ?c3)) ?k)"     => "(act hard_sigmoid:0.16666667:0.5 ?t)" if scalar_is("?c3", 3.0, 0.0) if scalar_is("?k", 1.0 / 6.0, 1e-6)),
        rw!("se";                 { se_a.parse::<egg::Pattern<SeLang>>().expect("invariant: valid pattern") } => { se_to.clone() } if se_ok),
        rw!("se-gate-first";      { se_b.parse::<egg::Pattern<SeLang>>().expect("invariant: valid pattern") } => { se_to } if se_ok),
        // the scale in the consumer: a 1x1 convolution of `x * gate` is the convolution of
        // x with its input channels scaled by the gate (`conv2d {gated}`), so no kernel
        // writes `x * gate` and none reads it back
        rw!("se-scale-in-conv";   "(conv1x1 (se ?x ?w1 ?b1 ?w2 ?b2 ?i ?g) ?w ?b)" => "(gconv ?x (se_gate ?x ?w1 ?b1 ?w2 ?b2 ?i ?g) ?w ?b)" if conv_takes_scale),
    ]
}
