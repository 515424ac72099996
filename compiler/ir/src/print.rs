//! The stable textual form of a graph, used for `--print-after` and snapshot tests.
//!
//! Values are numbered densely from `%0` in a deterministic topological order (ties broken by
//! creation order, i.e. ONNX position); a node's later results are `%n#1`, `%n#2`; attributes print sorted by key with defaults; floats in
//! shortest round-trip form; constants as `@cN: dtype[shape] #hash` (data only when they hold
//! at most 8 elements), numbered by first use. Provenance is a trailing `# "onnx name"`.
//! The constraints the shape rules imply on the symbols follow the signature, one
//! `require` line each, in the order they were found.
//! See docs/ir.md for the grammar.
use crate::graph::{ConstId, Graph, NodeId, ValueId};
use crate::op::Op;
use std::collections::BTreeMap;
use std::fmt::Write;

fn quote_name(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

/// Prints the graph in the textual IR.
pub fn print(g: &Graph) -> String {
    let order = match g.topo_order() {
        Some(o) => o,
        None => return format!("graph @{} <cyclic>\n", quote_name(&g.name)),
    };
    let names = &g.sym_names;
    let mut val: BTreeMap<NodeId, String> = BTreeMap::new();
    let mut consts: Vec<ConstId> = Vec::new();
    let mut const_name: BTreeMap<ConstId, String> = BTreeMap::new();
    for (name, id) in &g.inputs {
        val.insert(*id, format!("%{}", quote_name(name)));
    }
    // constants are numbered by first use, in printed order
    for id in &order {
        if matches!(g.node(*id).op, Op::Input { .. } | Op::Const(_)) {
            continue;
        }
        for v in g.inputs(*id) {
            if let Op::Const(c) = g.node(v.node).op {
                let nm = const_name.entry(c).or_insert_with(|| {
                    consts.push(c);
                    format!("@c{}", consts.len() - 1)
                });
                val.insert(v.node, nm.clone());
            }
        }
    }
    for (_, v) in &g.outputs {
        if let Op::Const(c) = g.node(v.node).op {
            let nm = const_name.entry(c).or_insert_with(|| {
                consts.push(c);
                format!("@c{}", consts.len() - 1)
            });
            val.insert(v.node, nm.clone());
        }
    }
    let mut next = 0usize;
    let mut body = String::new();
    let operand = |v: &ValueId, val: &BTreeMap<NodeId, String>| -> String {
        let base = val.get(&v.node).cloned().unwrap_or_else(|| "%?".into());
        if v.slot == 0 {
            base
        } else {
            format!("{base}#{}", v.slot)
        }
    };
    for id in &order {
        let n = g.node(*id);
        if matches!(n.op, Op::Input { .. } | Op::Const(_)) {
            continue;
        }
        let v = format!("%{next}");
        next += 1;
        let args: Vec<String> = g.inputs(*id).iter().map(|x| operand(x, &val)).collect();
        let attrs = n.op.attrs(names);
        // results after the first are `%v#k`, as operands name them
        let results: Vec<String> = n
            .outputs
            .iter()
            .enumerate()
            .map(|(k, t)| match k {
                0 => format!("{v}: {}", t.display(names)),
                k => format!("{v}#{k}: {}", t.display(names)),
            })
            .collect();
        let mut line = format!(
            "  {} = {}({})",
            results.join(", "),
            n.op.name(),
            args.join(", ")
        );
        if !attrs.is_empty() {
            let kv: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(line, " {{{}}}", kv.join(", "));
        }
        if let Some(o) = &n.origin {
            let _ = write!(line, "  # {o:?}");
        }
        body.push_str(&line);
        body.push('\n');
        val.insert(*id, v);
    }
    let mut out = String::new();
    let sig: Vec<String> = g
        .inputs
        .iter()
        .map(|(name, id)| {
            format!(
                "%{}: {}",
                quote_name(name),
                g.node(*id).outputs[0].display(names)
            )
        })
        .collect();
    let rets: Vec<String> = g
        .outputs
        .iter()
        .map(|(_, v)| g.ty(*v).display(names))
        .collect();
    let _ = writeln!(
        out,
        "graph @{}({}) -> ({}) {{",
        quote_name(&g.name),
        sig.join(", "),
        rets.join(", ")
    );
    for c in &g.constraints {
        let _ = writeln!(out, "  require {}", c.display(names));
    }
    out.push_str(&body);
    let outs: Vec<String> = g
        .outputs
        .iter()
        .map(|(name, v)| format!("{} as {}", operand(v, &val), quote_name(name)))
        .collect();
    let _ = writeln!(out, "  return {}", outs.join(", "));
    out.push_str("}\n");
    for (i, c) in consts.iter().enumerate() {
        let d = g.consts.get(*c);
        let _ = write!(out, "const @c{i}: {}", d.ty().display(names));
        if d.data.len() <= 8 {
            let vals: Vec<String> = d.data.iter().map(|x| format!("{x:?}")).collect();
            let _ = writeln!(out, " = [{}]", vals.join(", "));
        } else {
            let _ = writeln!(out, " #{:08x}", d.hash32());
        }
    }
    out
}
