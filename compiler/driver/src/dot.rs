//! `secc dot`: the IR as Graphviz DOT. Ops are boxes (weights folded into their consumer's
//! label), edges carry the value's type, graph inputs and outputs are ellipses. SE blocks are
//! highlighted clusters: before fusion, every node between a pool and the multiply the
//! se-fuse report says it fuses into; after it, the `squeeze_excite` node. Fused kernels
//! (element-wise programs, convolutions with an activation epilogue) are filled.
use secc_ir::{Graph, NodeId, Op};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A node's label: op, ONNX name, weight shapes.
fn label(g: &Graph, id: NodeId) -> String {
    let n = g.node(id);
    let mut l = n.op.name().to_string();
    if let Op::Conv2d(c) = &n.op {
        if let Some(a) = c.act {
            let _ = write!(l, " + {}", a.name());
        }
    }
    if let Some(o) = &n.origin {
        let o: String = o.chars().take(40).collect();
        let _ = write!(l, "\\n{}", esc(&o));
    }
    for v in g.inputs(id) {
        if let Some(c) = g.const_of(v) {
            let _ = write!(l, "\\nw{:?}", c.shape);
        }
    }
    l
}

fn is_weight(g: &Graph, id: NodeId) -> bool {
    matches!(g.node(id).op, Op::Const(_))
}

/// Nodes on a path from `from` to `to` (both included).
fn between(g: &Graph, from: NodeId, to: NodeId) -> BTreeSet<NodeId> {
    let mut down = BTreeSet::from([from]);
    let mut todo = vec![from];
    while let Some(n) = todo.pop() {
        for (u, _) in g.users(n.into()) {
            if down.insert(u) {
                todo.push(u);
            }
        }
    }
    let mut set = BTreeSet::new();
    let mut todo = vec![to];
    while let Some(n) = todo.pop() {
        if down.contains(&n) && set.insert(n) {
            todo.extend(g.inputs(n).into_iter().map(|v| v.node));
        }
    }
    set
}

/// DOT of `g`. `blocks` are the (pool, multiply) pairs of SE blocks still spelled out.
pub fn write(g: &Graph, blocks: &[(NodeId, NodeId)]) -> String {
    let mut cluster: BTreeMap<NodeId, usize> = BTreeMap::new();
    for (k, (p, m)) in blocks.iter().enumerate() {
        for n in between(g, *p, *m) {
            cluster.entry(n).or_insert(k + 1);
        }
    }
    let order = g.topo_order().unwrap_or_else(|| g.node_ids());
    let mut se = 0;
    for n in &order {
        if g.node(*n).op.is_se_block() {
            se += 1;
            cluster.insert(*n, blocks.len() + se);
        }
    }
    let mut s = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=8];\n",
        esc(&g.name)
    );
    let mut by_cluster: BTreeMap<usize, Vec<NodeId>> = BTreeMap::new();
    for n in &order {
        if is_weight(g, *n) {
            continue;
        }
        match cluster.get(n) {
            Some(k) => by_cluster.entry(*k).or_default().push(*n),
            None => node_line(&mut s, g, *n, "  "),
        }
    }
    for (k, ns) in &by_cluster {
        let _ = writeln!(
            s,
            "  subgraph cluster_se{k} {{\n    label=\"SE block {k}\"; style=\"filled,rounded\"; color=\"#d9534f\"; fillcolor=\"#fdecea\";"
        );
        for n in ns {
            node_line(&mut s, g, *n, "    ");
        }
        s.push_str("  }\n");
    }
    edges(&mut s, g, &order);
    s.push_str("}\n");
    s
}

fn node_line(s: &mut String, g: &Graph, n: NodeId, indent: &str) {
    let id = n.index();
    let op = &g.node(n).op;
    let attrs = match op {
        Op::Input { .. } => {
            let name = g
                .inputs
                .iter()
                .find(|(_, i)| *i == n)
                .map_or("", |(x, _)| x);
            return {
                let _ = writeln!(
                    s,
                    "{indent}n{id} [shape=ellipse, label=\"input {}\"];",
                    esc(name)
                );
            };
        }
        Op::SqueezeExcite(_) | Op::SeGate(_) => {
            ", style=\"filled,rounded,bold\", fillcolor=\"#f0ad4e\""
        }
        Op::Elementwise { .. } => ", style=\"filled,rounded\", fillcolor=\"#d9edf7\"",
        Op::Conv2d(c) if c.act.is_some() => ", style=\"filled,rounded\", fillcolor=\"#d9edf7\"",
        _ => "",
    };
    let _ = writeln!(s, "{indent}n{id} [label=\"{}\"{attrs}];", label(g, n));
}

fn edges(s: &mut String, g: &Graph, order: &[NodeId]) {
    for &n in order {
        if is_weight(g, n) {
            continue;
        }
        for v in g.inputs(n) {
            if is_weight(g, v.node) {
                continue;
            }
            let t = g.ty(v).display(&g.sym_names);
            let _ = writeln!(
                s,
                "  n{} -> n{} [label=\"{}\"];",
                v.node.index(),
                n.index(),
                esc(&t)
            );
        }
    }
    for (i, (name, v)) in g.outputs.iter().enumerate() {
        let t = g.ty(*v).display(&g.sym_names);
        let _ = writeln!(
            s,
            "  out{i} [shape=ellipse, label=\"output {}\"];\n  n{} -> out{i} [label=\"{}\"];",
            esc(name),
            v.node.index(),
            esc(&t)
        );
    }
}
