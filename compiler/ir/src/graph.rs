//! The graph container: nodes on a petgraph `StableDiGraph` (ids survive deletions), ordered
//! operand edges, named inputs and outputs, and the constant pool.
use crate::constraint::Constraint;
use crate::error::{IrError, NodeRef};
use crate::op::Op;
use crate::types::{SymId, TensorType};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};
use petgraph::Direction;
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Identifies a node; stays valid while the node exists.
pub type NodeId = NodeIndex<u32>;

/// One output of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId {
    /// producing node
    pub node: NodeId,
    /// output slot
    pub slot: u8,
}

impl From<NodeId> for ValueId {
    fn from(node: NodeId) -> Self {
        ValueId { node, slot: 0 }
    }
}

/// Identifies a constant in the [`ConstPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConstId(pub u32);

/// A constant tensor (always of known shape).
#[derive(Debug, Clone, PartialEq)]
pub struct ConstData {
    /// extents
    pub shape: Vec<usize>,
    /// row-major data
    pub data: Arc<Vec<f32>>,
}

impl ConstData {
    /// New constant; `data.len()` must equal the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        ConstData {
            shape,
            data: Arc::new(data),
        }
    }
    /// Type of the constant.
    pub fn ty(&self) -> TensorType {
        TensorType::f32_known(&self.shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
    }
    /// Short content hash (FNV-1a over shape and bits) for printing.
    pub fn hash32(&self) -> u32 {
        let mut h: u64 = 0xcbf29ce484222325;
        let mut eat = |b: u8| {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        };
        for &d in &self.shape {
            for b in (d as u64).to_le_bytes() {
                eat(b);
            }
        }
        for v in self.data.iter() {
            for b in v.to_bits().to_le_bytes() {
                eat(b);
            }
        }
        (h ^ (h >> 32)) as u32
    }
}

/// Storage for constant tensors, referenced by [`Op::Const`].
#[derive(Debug, Clone, Default)]
pub struct ConstPool {
    items: Vec<ConstData>,
}

impl ConstPool {
    /// Adds a constant.
    pub fn add(&mut self, c: ConstData) -> ConstId {
        self.items.push(c);
        ConstId(self.items.len() as u32 - 1)
    }
    /// Looks a constant up.
    pub fn get(&self, id: ConstId) -> &ConstData {
        &self.items[id.0 as usize]
    }
    /// Number of constants.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A node: op, inferred output types, and provenance.
#[derive(Debug, Clone)]
pub struct Node {
    /// the operation
    pub op: Op,
    /// output types (one per slot)
    pub outputs: SmallVec<[TensorType; 1]>,
    /// name of the ONNX node this came from, kept through passes
    pub origin: Option<String>,
    /// creation order, used to break ties when printing
    pub order: u32,
}

/// Edge weight: which output of the source feeds which operand of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// output slot of the producer
    pub src_slot: u8,
    /// operand position in the consumer
    pub dst_slot: u8,
}

/// A dataflow graph.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// graph name (the ONNX graph name)
    pub name: String,
    g: StableDiGraph<Node, Edge, u32>,
    /// input nodes in signature order, with their names
    pub inputs: Vec<(String, NodeId)>,
    /// outputs in signature order, with their names
    pub outputs: Vec<(String, ValueId)>,
    /// weights
    pub consts: ConstPool,
    /// names of symbolic dimensions, indexed by [`SymId`]
    pub sym_names: Vec<String>,
    /// what the shape rules require of the symbols (each once, in the order found)
    pub constraints: Vec<Constraint>,
    next_order: u32,
    const_nodes: BTreeMap<ConstId, NodeId>,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Self {
        Graph {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Interns a symbolic dimension name.
    pub fn sym(&mut self, name: &str) -> SymId {
        if let Some(i) = self.sym_names.iter().position(|n| n == name) {
            return SymId(i as u32);
        }
        self.sym_names.push(name.to_string());
        SymId(self.sym_names.len() as u32 - 1)
    }

    /// Records a constraint on the symbols unless an equal one (whatever its origin) is
    /// already known.
    pub fn add_constraint(&mut self, c: Constraint) {
        let same = |d: &Constraint| d.lhs == c.lhs && d.rel == c.rel && d.rhs == c.rhs;
        if !self.constraints.iter().any(same) {
            self.constraints.push(c);
        }
    }

    /// Adds a graph input of the given type.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> ValueId {
        let index = self.inputs.len() as u32;
        let name = name.into();
        let id = self.push(
            Op::Input { index },
            smallvec::smallvec![ty],
            Some(name.clone()),
        );
        self.inputs.push((name, id));
        id.into()
    }

    /// Adds a constant to the pool and a node producing it (one node per constant).
    pub fn add_const(&mut self, c: ConstData, origin: Option<String>) -> ValueId {
        let ty = c.ty();
        let cid = self.consts.add(c);
        let id = self.push(Op::Const(cid), smallvec::smallvec![ty], origin);
        self.const_nodes.insert(cid, id);
        id.into()
    }

    /// The node for an existing constant id.
    pub fn const_node(&self, id: ConstId) -> Option<NodeId> {
        self.const_nodes
            .get(&id)
            .copied()
            .filter(|n| self.g.contains_node(*n))
    }

    /// Adds a node after checking arity and inferring its type from its operands.
    pub fn add_node(
        &mut self,
        op: Op,
        inputs: &[ValueId],
        origin: Option<String>,
    ) -> Result<ValueId, IrError> {
        let tys: Vec<&TensorType> = inputs.iter().map(|v| self.ty(*v)).collect();
        let (out, reqs) = op.infer_constrained(&tys).map_err(|e| IrError::AtNode {
            node: NodeRef {
                id: self.g.node_bound() as u32,
                origin: origin.clone(),
                op: op.name().into(),
            },
            source: Box::new(e),
        })?;
        let at = match &origin {
            Some(o) => format!("node {o:?} ({})", op.name()),
            None => format!("node {} ({})", self.g.node_bound(), op.name()),
        };
        for mut c in reqs {
            c.origin.clone_from(&at);
            self.add_constraint(c);
        }
        let mut outs: SmallVec<[TensorType; 1]> = smallvec::smallvec![out];
        outs.extend(op.extra_outputs(&outs[0]));
        let id = self.push(op, outs, origin);
        for (i, v) in inputs.iter().enumerate() {
            self.g.add_edge(
                v.node,
                id,
                Edge {
                    src_slot: v.slot,
                    dst_slot: i as u8,
                },
            );
        }
        Ok(id.into())
    }

    fn push(
        &mut self,
        op: Op,
        outputs: SmallVec<[TensorType; 1]>,
        origin: Option<String>,
    ) -> NodeId {
        let order = self.next_order;
        self.next_order += 1;
        self.g.add_node(Node {
            op,
            outputs,
            origin,
            order,
        })
    }

    /// Marks a value as a graph output.
    pub fn add_output(&mut self, name: impl Into<String>, v: ValueId) {
        self.outputs.push((name.into(), v));
    }

    /// The node.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    /// The node, mutably (changing `op` requires re-checking types: run the verifier).
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    /// True if the node exists.
    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id)
    }

    /// Type of a value.
    pub fn ty(&self, v: ValueId) -> &TensorType {
        &self.g[v.node].outputs[v.slot as usize]
    }

    /// Operands of a node in order.
    pub fn inputs(&self, id: NodeId) -> Vec<ValueId> {
        let mut e: Vec<(u8, ValueId)> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .map(|e| {
                (
                    e.weight().dst_slot,
                    ValueId {
                        node: e.source(),
                        slot: e.weight().src_slot,
                    },
                )
            })
            .collect();
        e.sort_by_key(|x| x.0);
        e.into_iter().map(|x| x.1).collect()
    }

    /// Consumers of a node's outputs: `(consumer, operand position)`, sorted.
    pub fn users(&self, v: ValueId) -> Vec<(NodeId, u8)> {
        let mut u: Vec<(NodeId, u8)> = self
            .g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().src_slot == v.slot)
            .map(|e| (e.target(), e.weight().dst_slot))
            .collect();
        u.sort();
        u
    }

    /// Number of uses, graph outputs included.
    pub fn use_count(&self, v: ValueId) -> usize {
        self.users(v).len() + self.outputs.iter().filter(|o| o.1 == v).count()
    }

    /// True if the value is a graph output.
    pub fn is_output(&self, v: ValueId) -> bool {
        self.outputs.iter().any(|o| o.1 == v)
    }

    /// The constant behind a value, if it is produced by a `Const` node.
    pub fn const_of(&self, v: ValueId) -> Option<&ConstData> {
        match self.g[v.node].op {
            Op::Const(c) => Some(self.consts.get(c)),
            _ => None,
        }
    }

    /// Redirects the uses of every result of node `old` to the same result of `new` (a node
    /// of the same op whose results have the same types).
    pub fn replace_node_uses(&mut self, old: NodeId, new: NodeId) {
        for slot in 0..self.g[old].outputs.len() as u8 {
            self.replace_all_uses(ValueId { node: old, slot }, ValueId { node: new, slot });
        }
    }

    /// Redirects every use of `old` (operands and graph outputs) to `new`.
    pub fn replace_all_uses(&mut self, old: ValueId, new: ValueId) {
        if old == new {
            return;
        }
        let edges: Vec<_> = self
            .g
            .edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().src_slot == old.slot)
            .map(|e| (e.id(), e.target(), e.weight().dst_slot))
            .collect();
        for (eid, tgt, dst) in edges {
            self.g.remove_edge(eid);
            self.g.add_edge(
                new.node,
                tgt,
                Edge {
                    src_slot: new.slot,
                    dst_slot: dst,
                },
            );
        }
        for o in self.outputs.iter_mut() {
            if o.1 == old {
                o.1 = new;
            }
        }
    }

    /// Makes operand `slot` of node `id` read `v` instead (the caller keeps types valid).
    pub fn set_operand(&mut self, id: NodeId, slot: u8, v: ValueId) {
        let old: Vec<_> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .filter(|e| e.weight().dst_slot == slot)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        self.g.add_edge(
            v.node,
            id,
            Edge {
                src_slot: v.slot,
                dst_slot: slot,
            },
        );
    }

    /// Removes a node and its edges. Callers make sure it has no uses left.
    pub fn remove_node(&mut self, id: NodeId) {
        self.g.remove_node(id);
        self.inputs.retain(|(_, n)| *n != id);
    }

    /// All live node ids, in index order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.g.node_indices().collect()
    }

    /// Topological order; ties broken by creation order, so it is deterministic.
    /// Returns `None` if the graph has a cycle.
    pub fn topo_order(&self) -> Option<Vec<NodeId>> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut indeg: BTreeMap<NodeId, usize> = BTreeMap::new();
        for n in self.g.node_indices() {
            indeg.insert(n, self.g.edges_directed(n, Direction::Incoming).count());
        }
        let mut heap: BinaryHeap<Reverse<(u32, NodeId)>> = indeg
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(&n, _)| Reverse((self.g[n].order, n)))
            .collect();
        let mut out = Vec::with_capacity(indeg.len());
        while let Some(Reverse((_, n))) = heap.pop() {
            out.push(n);
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let d = indeg
                    .get_mut(&e.target())
                    .expect("invariant: every node has an in-degree");
                *d -= 1;
                if *d == 0 {
                    heap.push(Reverse((self.g[e.target()].order, e.target())));
                }
            }
        }
        (out.len() == indeg.len()).then_some(out)
    }

    /// A printable reference to a node for error messages.
    pub fn node_ref(&self, id: NodeId) -> NodeRef {
        let n = &self.g[id];
        NodeRef {
            id: id.index() as u32,
            origin: n.origin.clone(),
            op: n.op.name().into(),
        }
    }

    /// Re-infers the output types of a node from its operands (after an op edit, which may
    /// add or drop results after the first). The first result keeps its stored layout: the
    /// layout is a lowering decision, not part of the type rule.
    pub fn reinfer(&mut self, id: NodeId) -> Result<(), IrError> {
        if matches!(self.g[id].op, Op::Input { .. } | Op::Const(_)) {
            return Ok(());
        }
        let ins = self.inputs(id);
        let tys: Vec<&TensorType> = ins.iter().map(|v| self.ty(*v)).collect();
        let t = self.g[id].op.infer(&tys).map_err(|e| IrError::AtNode {
            node: self.node_ref(id),
            source: Box::new(e),
        })?;
        let mut outs: SmallVec<[TensorType; 1]> =
            smallvec::smallvec![t.with_layout(self.g[id].outputs[0].layout)];
        outs.extend(self.g[id].op.extra_outputs(&outs[0]));
        self.g[id].outputs = outs;
        Ok(())
    }

    pub(crate) fn raw(&self) -> &StableDiGraph<Node, Edge, u32> {
        &self.g
    }
}
