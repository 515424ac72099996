//! Why each SE candidate fused or not (`secc explain`), read off the saturated se-fuse
//! e-graph itself: from every global pooling the walk follows [`rules::SE_STEPS`] (the steps
//! the `se` rule's pattern is nested from) forward through parent e-classes; where no parent
//! continues the block, the IR value at that point names the reason (another consumer, an op
//! the rules do not know, a classifier head), and a reached multiply is judged by
//! [`rules::se_check`], the `se` rule's own condition. So the report cannot disagree with the
//! pass: it reads the same e-graph with the same patterns and conditions.
use super::lang::SeLang;
use super::rules::{self, SE_STEPS};
use super::EG;
use egg::{Id, Pattern, Searcher, Subst};
use secc_ir::{Dim, Graph, NodeId, Op, ReduceKind};
use std::collections::BTreeMap;
use std::fmt;

/// What `se-fuse` found: every SE candidate in topological order.
#[derive(Debug, Clone, Default)]
pub struct SeReport {
    /// pools first reached, then multiplies by a per-channel gate no pool led to
    pub candidates: Vec<Candidate>,
}

/// The kind of an SE candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateKind {
    /// a global pooling (GlobalAveragePool, ReduceMean or ReduceSum over H and W)
    Pool,
    /// a multiply by a per-channel `[N, C, 1, 1]` gate
    GateMul,
}

/// One candidate and its outcome.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// pool or gate multiply
    pub kind: CandidateKind,
    /// the candidate node: its ONNX name (or an IR reference when it has none)
    pub node: String,
    /// the candidate's plain name: ONNX node name, graph input name or `n<id>`
    pub node_name: String,
    /// the multiply's plain name
    pub mul_name: Option<String>,
    /// the candidate node in the graph the pass ran on
    pub node_id: NodeId,
    /// the multiply the block ends in, in that graph
    pub mul_id: Option<NodeId>,
    /// IR op mnemonic of the candidate
    pub op: String,
    /// type of its (first non-gate) operand, e.g. `f32[N,16,6,6]`
    pub input_type: String,
    /// type of its result
    pub output_type: String,
    /// the multiply the block ends in, when the walk reached one
    pub mul: Option<String>,
    /// fused, or why not
    pub outcome: Outcome,
}

/// Fused as block `k`, or the reason it was not.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// fused as the `block`-th SE block (1-based, topological order)
    Fused {
        /// block number
        block: usize,
        /// the node of the fused `squeeze_excite`
        se_node: String,
        /// inner and gate activations, channels C and reduced R
        spelling: String,
    },
    /// not fused
    NotFused(Reason),
}

/// Why a candidate did not fuse, naming the nodes involved.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// the pool is not a mean (ReduceSum), which the rules do not treat as a squeeze
    NotMean {
        /// what the pool computes
        kind: String,
    },
    /// the gate multiplies another tensor than the pooled one
    OtherTensor {
        /// the tensor that was pooled
        pooled: String,
        /// the tensor the gate multiplies
        multiplied: String,
        /// the multiply
        mul: String,
    },
    /// a value inside the block is used outside it too
    OtherConsumer {
        /// the shared value
        value: String,
        /// every consumer (nodes, and graph outputs as `graph output "NAME"`)
        consumers: Vec<String>,
    },
    /// no excitation follows the pool: it ends or feeds something else (a classifier)
    NoExcitation {
        /// the last value of the matched part
        last: String,
        /// where it goes: `a graph output` or the consuming node
        then: String,
        /// the FC layer after the pool, when there is one (a classifier Gemm)
        fc: Option<String>,
    },
    /// an op the rules do not know sits where a block step was expected
    UnknownOp {
        /// the op's node
        node: String,
        /// what the rules expected there
        expected: &'static str,
    },
    /// a node the rules know is there, but not in the form the step needs
    Mismatch {
        /// the node
        node: String,
        /// what the rules expected there
        expected: &'static str,
    },
    /// the whole block matched but its condition refused it (shapes, weights, gate)
    Refused(String),
    /// a per-channel gate that no global pooling leads to
    NoPool {
        /// the gate operand
        gate: String,
    },
}

impl Reason {
    /// A stable short code for JSON (`other_tensor`, `other_consumer`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NotMean { .. } => "not_mean",
            Reason::OtherTensor { .. } => "other_tensor",
            Reason::OtherConsumer { .. } => "other_consumer",
            Reason::NoExcitation { .. } => "no_excitation",
            Reason::UnknownOp { .. } => "unknown_op",
            Reason::Mismatch { .. } => "mismatch",
            Reason::Refused(_) => "refused",
            Reason::NoPool { .. } => "no_pool",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotMean { kind } => write!(
                f,
                "the pool is a {kind}, not a mean: the SE rules only fuse average pooling \
                 (GlobalAveragePool, ReduceMean over H and W, or ReduceSum over known H and W \
                 times 1/(H*W) or divided by H*W)"
            ),
            Reason::OtherTensor {
                pooled,
                multiplied,
                mul,
            } => write!(
                f,
                "the gate multiplies {multiplied} in {mul}, not the pooled tensor {pooled}: an SE \
                 block scales the tensor it pooled"
            ),
            Reason::OtherConsumer { value, consumers } => write!(
                f,
                "{value} has another consumer ({}): the fused kernel would not produce it",
                consumers.join(", ")
            ),
            Reason::NoExcitation { last, then, fc } => match fc {
                Some(fc) => write!(
                    f,
                    "no excitation follows the pool: it feeds the FC layer {fc}, which feeds \
                     {then} (a classifier head, not an SE block)"
                ),
                None => write!(f, "no excitation follows the pool: {last} feeds {then}"),
            },
            Reason::UnknownOp { node, expected } => write!(
                f,
                "{node} is an op the SE rules do not know, where they expect the {expected}"
            ),
            Reason::Mismatch { node, expected } => write!(
                f,
                "{node} is not in a form the SE rules accept as the {expected}"
            ),
            Reason::Refused(why) => write!(f, "the block matched, but {why}"),
            Reason::NoPool { gate } => write!(
                f,
                "the per-channel gate {gate} is not computed from a global average pool of the \
                 multiplied tensor through layers the SE rules know"
            ),
        }
    }
}

/// A pool's walk before the splice: the multiply it reached with the block's condition
/// passed, or the reason it stopped.
pub(super) enum Pending {
    /// the `se` rule matched at this multiply
    Reached(NodeId),
    /// stopped; the multiply reached, if any
    Stopped(Reason, Option<NodeId>),
}

/// A walk candidate before the splice decides.
pub(super) struct PoolWalk {
    pub pool: NodeId,
    pub pending: Pending,
}

/// What the walk reads: the saturated e-graph and the IR it came from.
pub(super) struct Ctx<'a> {
    pub eg: &'a EG,
    pub g: &'a Graph,
    pub id_of: &'a BTreeMap<NodeId, Id>,
    pub core_of: &'a BTreeMap<NodeId, Id>,
    /// canonical class -> earliest IR node standing for it
    pub value_of: &'a BTreeMap<Id, NodeId>,
}

/// How far one branch of the walk got.
#[derive(Clone)]
enum End {
    /// no parent continues after `steps` steps, at class `at`
    Stuck { steps: usize, at: Id },
    /// a multiply of the gate by the class `y`
    Mul { class: Id, y: Id },
}

fn pat(s: &str) -> Pattern<SeLang> {
    s.parse()
        .expect("invariant: the SE step patterns are valid")
}

/// A node's name for users: the graph input's name, or the ONNX node name with the op.
pub(super) fn name(g: &Graph, id: NodeId) -> String {
    if let Some((n, _)) = g.inputs.iter().find(|(_, i)| *i == id) {
        return format!("graph input {n:?}");
    }
    let n = g.node(id);
    match &n.origin {
        Some(o) => format!("{o:?} ({})", n.op.name()),
        None => format!("n{} ({})", id.index(), n.op.name()),
    }
}

/// A node's plain name: the graph input's name, the ONNX node name, or `n<id>`.
pub(super) fn plain_name(g: &Graph, id: NodeId) -> String {
    if let Some((n, _)) = g.inputs.iter().find(|(_, i)| *i == id) {
        return n.clone();
    }
    g.node(id)
        .origin
        .clone()
        .unwrap_or_else(|| format!("n{}", id.index()))
}

/// True for a pooling over H and W of an NCHW tensor.
pub(super) fn is_pool(g: &Graph, id: NodeId) -> bool {
    let n = g.node(id);
    let rank4 = || {
        g.inputs(id)
            .first()
            .is_some_and(|v| g.ty(*v).shape.len() == 4)
    };
    match &n.op {
        Op::GlobalAvgPool => true,
        Op::ReduceMean { axes, .. } => axes == &[2, 3] && rank4(),
        Op::Reduce {
            kind: ReduceKind::Sum,
            axes,
            ..
        } => axes == &[2, 3] && rank4(),
        _ => false,
    }
}

impl Ctx<'_> {
    fn find(&self, id: Id) -> Id {
        self.eg.find(id)
    }

    /// `(parent class, subst)` for each parent of `h` matching `step` with `?h` = `h`.
    fn step(&self, h: Id, step: &Pattern<SeLang>) -> Vec<(Id, Subst)> {
        let mut parents: Vec<Id> = self.eg[h].parents().map(|p| self.find(p)).collect();
        parents.sort();
        parents.dedup();
        let hv = rules::var("?h");
        let mut out = vec![];
        for p in parents {
            for m in step.search_eclass(self.eg, p).into_iter() {
                for s in m.substs {
                    if self.find(s[hv]) == h {
                        out.push((p, s));
                    }
                }
            }
        }
        out
    }

    /// The deepest branch from class `h` after `done` steps, toward a multiply by `x`.
    fn walk(&self, h: Id, done: usize, x: Id) -> End {
        if done == SE_STEPS.len() {
            let mut best = End::Stuck { steps: done, at: h };
            for p in ["(mul ?y ?h)", "(mul ?h ?y)"] {
                for (class, s) in self.step(h, &pat(p)) {
                    let y = self.find(s[rules::var("?y")]);
                    if y == x || !matches!(best, End::Mul { .. }) {
                        best = End::Mul { class, y };
                    }
                }
            }
            return best;
        }
        let mut best = End::Stuck { steps: done, at: h };
        for (next, _) in self.step(h, &pat(SE_STEPS[done].0)) {
            let e = self.walk(next, done + 1, x);
            if self.rank(&e, x) > self.rank(&best, x) {
                best = e;
            }
        }
        best
    }

    /// How good a branch end is: a multiply of the pooled tensor beats any other multiply,
    /// which beats getting stuck; deeper beats shallower, and an end with an IR value
    /// (whose consumers can be named) beats one without.
    fn rank(&self, e: &End, x: Id) -> usize {
        match e {
            End::Mul { y, .. } if *y == x => 100,
            End::Mul { .. } => 99,
            End::Stuck { steps, at } => 2 * steps + usize::from(self.ir_at(*at).is_some()),
        }
    }

    /// The IR value standing for class `h`, or for the layout change (`to4d`/`to2d`) of it
    /// the IR computes (a 1x1 conv's class is `to4d` of its dense layer).
    fn ir_at(&self, h: Id) -> Option<NodeId> {
        if let Some(v) = self.value_of.get(&h) {
            return Some(*v);
        }
        self.eg[h].parents().find_map(|p| {
            let p = self.find(p);
            let layout = self.eg[p].nodes.iter().any(|n| match n {
                SeLang::To4d(c) | SeLang::To2d(c) => self.find(*c) == h,
                _ => false,
            });
            layout.then(|| self.value_of.get(&p).copied()).flatten()
        })
    }

    /// Consumers of `v` by name, graph outputs included.
    fn consumers(&self, v: NodeId) -> Vec<String> {
        let mut c: Vec<String> = self
            .g
            .users(v.into())
            .into_iter()
            .map(|(u, _)| name(self.g, u))
            .collect();
        for (n, o) in &self.g.outputs {
            if o.node == v {
                c.push(format!("graph output {n:?}"));
            }
        }
        c
    }

    /// The reason a walk stopped after `steps` steps at class `at`.
    fn stuck(&self, steps: usize, at: Id) -> Reason {
        let expected = SE_STEPS.get(steps).map_or("multiply by the gate", |s| s.1);
        let Some(v) = self.ir_at(at) else {
            return Reason::Mismatch {
                node: "the matched part".into(),
                expected,
            };
        };
        let consumers = self.consumers(v);
        if consumers.len() > 1 {
            return Reason::OtherConsumer {
                value: name(self.g, v),
                consumers,
            };
        }
        // after the squeeze layer at the latest, a value that leads to no gate multiply is
        // not the start of an excitation (a classifier head, a pooled feature output)
        let fc = (steps == 3).then(|| name(self.g, v));
        let users = self.g.users(v.into());
        let Some(&(u, _)) = users.first() else {
            let then = consumers.first().cloned().unwrap_or("nothing".into());
            return Reason::NoExcitation {
                last: name(self.g, v),
                then,
                fc,
            };
        };
        if steps <= 3 && !self.reaches_gate_mul(v) {
            return Reason::NoExcitation {
                last: name(self.g, v),
                then: name(self.g, u),
                fc,
            };
        }
        let node = name(self.g, u);
        if self.core_of.contains_key(&u) {
            Reason::Mismatch { node, expected }
        } else {
            Reason::UnknownOp { node, expected }
        }
    }

    /// Whether some multiply by a per-channel gate is downstream of `v` (a few hops).
    fn reaches_gate_mul(&self, v: NodeId) -> bool {
        let mut seen = vec![v];
        let mut todo = vec![(v, 0)];
        while let Some((n, d)) = todo.pop() {
            if gate_operand(self.g, n).is_some() {
                return true;
            }
            for (u, _) in self.g.users(n.into()) {
                if d < 12 && !seen.contains(&u) {
                    seen.push(u);
                    todo.push((u, d + 1));
                }
            }
        }
        false
    }

    /// The `se` rule's condition at the multiply `class` for the pooled class `x`.
    fn check_mul(&self, class: Id, x: Id) -> Result<(), String> {
        let body = rules::se_body();
        let mut first = None;
        for p in [format!("(mul ?x {body})"), format!("(mul {body} ?x)")] {
            for m in pat(&p).search_eclass(self.eg, class).into_iter() {
                for s in m.substs {
                    if self.find(s[rules::var("?x")]) != x {
                        continue;
                    }
                    match rules::se_check(self.eg, &s) {
                        Ok(()) => return Ok(()),
                        Err(e) => first = first.or(Some(e)),
                    }
                }
            }
        }
        Err(first.unwrap_or_else(|| "the block's steps do not form one SE body".into()))
    }

    /// Walks from the pool `p` (an IR node satisfying [`is_pool`]).
    pub fn pool(&self, p: NodeId) -> PoolWalk {
        let stopped = |r| PoolWalk {
            pool: p,
            pending: Pending::Stopped(r, None),
        };
        let xv = self.g.inputs(p)[0].node;
        let x = self.find(self.id_of[&xv]);
        let gap = self.eg.lookup(SeLang::Gap(x));
        // a sum is a pool only where a rule found it scaled by 1 / (H * W)
        if let (Op::Reduce { kind, .. }, None) = (&self.g.node(p).op, gap) {
            return stopped(Reason::NotMean {
                kind: format!("{kind:?}").to_lowercase(),
            });
        }
        let Some(gap) = gap else {
            return stopped(Reason::Mismatch {
                node: name(self.g, p),
                expected: SE_STEPS[0].1,
            });
        };
        match self.walk(gap, 1, x) {
            End::Stuck { steps, at } => {
                // the multiply a stuck gate still feeds (a gate with another consumer)
                let mul = self.ir_at(at).and_then(|v| {
                    let users = self.g.users(v.into());
                    users
                        .into_iter()
                        .map(|(u, _)| u)
                        .find(|u| gate_operand(self.g, *u) == Some(v))
                });
                PoolWalk {
                    pool: p,
                    pending: Pending::Stopped(self.stuck(steps, at), mul),
                }
            }
            End::Mul { class, y } => {
                let Some(&mul) = self.value_of.get(&class) else {
                    return stopped(Reason::Refused("the multiply is not an IR node".into()));
                };
                let pending = if y != x {
                    let who = |c: Id| {
                        self.value_of
                            .get(&c)
                            .map_or("a computed value".into(), |n| name(self.g, *n))
                    };
                    Pending::Stopped(
                        Reason::OtherTensor {
                            pooled: who(x),
                            multiplied: who(y),
                            mul: name(self.g, mul),
                        },
                        Some(mul),
                    )
                } else {
                    match self.check_mul(class, x) {
                        Ok(()) => Pending::Reached(mul),
                        Err(e) => Pending::Stopped(Reason::Refused(e), Some(mul)),
                    }
                };
                PoolWalk { pool: p, pending }
            }
        }
    }
}

/// A multiply of an `[N, C, H, W]` tensor by an `[N, C, 1, 1]` gate: the gate operand.
pub(super) fn gate_operand(g: &Graph, id: NodeId) -> Option<NodeId> {
    if g.node(id).op != Op::Binary(secc_ir::BinaryOp::Mul) {
        return None;
    }
    let ins = g.inputs(id);
    let one = Dim::Known(1);
    let is_gate = |a: &[Dim], b: &[Dim]| {
        a.len() == 4 && b.len() == 4 && a[2] == one && a[3] == one && a[..2] == b[..2]
    };
    let (a, b) = (&g.ty(ins[0]).shape, &g.ty(ins[1]).shape);
    if a == b {
        return None;
    }
    if is_gate(b, a) {
        Some(ins[1].node)
    } else if is_gate(a, b) {
        Some(ins[0].node)
    } else {
        None
    }
}

/// What the splice decided, per IR multiply.
pub(super) struct Decided<'a> {
    /// fused multiplies: block number, the fused node, the spelling
    pub fused: &'a BTreeMap<NodeId, (usize, String, String)>,
    /// multiplies the splice refused, with the reason
    pub skipped: &'a BTreeMap<NodeId, String>,
    /// how the e-graph run ended
    pub stop: &'a str,
}

/// The report from the walks and the splice's decisions (the graph after the splice: the
/// candidates are still there, only their uses moved).
pub(super) fn finish(
    walks: &[PoolWalk],
    gate_muls: &[(NodeId, NodeId)],
    d: &Decided<'_>,
    g: &Graph,
) -> SeReport {
    let ty = |v: secc_ir::ValueId| g.ty(v).display(&g.sym_names);
    let mut candidates = vec![];
    let mut muls_seen = vec![];
    for w in walks {
        let (outcome, mul) = match &w.pending {
            Pending::Reached(m) => (decide(*m, d, g), Some(*m)),
            Pending::Stopped(r, m) => (Outcome::NotFused(r.clone()), *m),
        };
        muls_seen.extend(mul);
        candidates.push(Candidate {
            kind: CandidateKind::Pool,
            node: name(g, w.pool),
            node_name: plain_name(g, w.pool),
            mul_name: mul.map(|m| plain_name(g, m)),
            node_id: w.pool,
            mul_id: mul,
            op: g.node(w.pool).op.name().into(),
            input_type: ty(g.inputs(w.pool)[0]),
            output_type: ty(w.pool.into()),
            mul: mul.map(|m| name(g, m)),
            outcome,
        });
    }
    for (m, gate) in gate_muls {
        if muls_seen.contains(m) {
            continue;
        }
        let x = g.inputs(*m).into_iter().find(|v| v.node != *gate);
        let outcome = match d.fused.contains_key(m) {
            true => decide(*m, d, g),
            false => Outcome::NotFused(Reason::NoPool {
                gate: name(g, *gate),
            }),
        };
        candidates.push(Candidate {
            kind: CandidateKind::GateMul,
            node: name(g, *m),
            node_name: plain_name(g, *m),
            mul_name: Some(plain_name(g, *m)),
            node_id: *m,
            mul_id: Some(*m),
            op: g.node(*m).op.name().into(),
            input_type: x.map(ty).unwrap_or_default(),
            output_type: ty((*m).into()),
            mul: Some(name(g, *m)),
            outcome,
        });
    }
    SeReport { candidates }
}

/// The outcome at a multiply whose block matched.
fn decide(m: NodeId, d: &Decided<'_>, g: &Graph) -> Outcome {
    if let Some((block, se_node, spelling)) = d.fused.get(&m) {
        return Outcome::Fused {
            block: *block,
            se_node: se_node.clone(),
            spelling: spelling.clone(),
        };
    }
    let why = match d.skipped.get(&m) {
        Some(s) => s.clone(),
        None => format!(
            "the se rule did not fire at {} (e-graph {})",
            name(g, m),
            d.stop
        ),
    };
    Outcome::NotFused(Reason::Refused(why))
}
