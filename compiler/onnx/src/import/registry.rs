//! The op registry: every supported ONNX op type (default domain) and the function that
//! imports it. `Importer::node` looks ops up here, and [`SUPPORTED_OPS`] is derived from the
//! same table, so an op cannot be listed without a handler or handled without being listed.
use super::{Importer, R};
use crate::attrs::NodeCx;
use secc_ir::{Activation, BinaryOp};

/// Imports one node of its op type (domain checked, not an integer-tensor computation).
pub(super) type Handler = fn(&mut Importer<'_>, &NodeCx<'_>) -> R<()>;

/// Every supported op and its handler, grouped by the module that holds the handler.
const REGISTRY: &[(&str, Handler)] = &[
    // constant.rs
    ("Constant", |im, cx| im.constant(cx)),
    ("ConstantOfShape", |im, cx| im.constant_of_shape(cx)),
    // shape.rs: defined on integer tensors only; `is_int_node` always claims them
    ("Shape", |im, cx| im.int_node(cx)),
    ("Size", |im, cx| im.int_node(cx)),
    // reshape.rs
    ("Identity", |im, cx| im.identity(cx)),
    ("Dropout", |im, cx| im.dropout(cx)),
    ("Flatten", |im, cx| im.flatten(cx)),
    ("Reshape", |im, cx| im.reshape(cx)),
    ("Squeeze", |im, cx| im.squeeze(cx)),
    ("Unsqueeze", |im, cx| im.unsqueeze(cx)),
    // data.rs
    ("Gather", |im, cx| im.gather(cx)),
    ("Slice", |im, cx| im.slice(cx)),
    ("Split", |im, cx| im.split(cx)),
    ("Concat", |im, cx| im.concat(cx)),
    ("Transpose", |im, cx| im.transpose(cx)),
    ("Pad", |im, cx| im.pad(cx)),
    ("Expand", |im, cx| im.expand(cx)),
    ("Cast", |im, cx| im.cast(cx)),
    ("CastLike", |im, cx| im.cast(cx)),
    ("Resize", |im, cx| im.resize(cx)),
    ("Upsample", |im, cx| im.resize(cx)),
    // elementwise.rs: binary arithmetic
    ("Add", |im, cx| im.binary(cx, BinaryOp::Add)),
    ("Sub", |im, cx| im.binary(cx, BinaryOp::Sub)),
    ("Mul", |im, cx| im.binary(cx, BinaryOp::Mul)),
    ("Div", |im, cx| im.binary(cx, BinaryOp::Div)),
    ("PRelu", |im, cx| im.prelu(cx)),
    ("Pow", |im, cx| im.pow(cx)),
    ("Reciprocal", |im, cx| im.reciprocal(cx)),
    // elementwise.rs: variadic
    ("Sum", |im, cx| im.sum_mean(cx)),
    ("Mean", |im, cx| im.sum_mean(cx)),
    ("Min", |im, cx| im.min_max(cx)),
    ("Max", |im, cx| im.min_max(cx)),
    // elementwise.rs: activations and unary functions
    ("Relu", |im, cx| im.act(cx, Activation::Relu)),
    ("LeakyRelu", |im, cx| im.leaky_relu(cx)),
    ("Elu", |im, cx| im.elu(cx)),
    ("Selu", |im, cx| im.selu(cx)),
    ("Celu", |im, cx| im.celu(cx)),
    ("ThresholdedRelu", |im, cx| im.thresholded_relu(cx)),
    ("Gelu", |im, cx| im.gelu(cx)),
    ("Sigmoid", |im, cx| im.act(cx, Activation::Sigmoid)),
    ("HardSigmoid", |im, cx| im.hard_sigmoid(cx)),
    ("HardSwish", |im, cx| im.act(cx, Activation::HardSwish)),
    ("Clip", |im, cx| im.clip(cx)),
    ("Tanh", |im, cx| im.act(cx, Activation::Tanh)),
    ("Exp", |im, cx| im.act(cx, Activation::Exp)),
    ("Log", |im, cx| im.act(cx, Activation::Log)),
    ("Sqrt", |im, cx| im.act(cx, Activation::Sqrt)),
    ("Neg", |im, cx| im.act(cx, Activation::Neg)),
    ("Abs", |im, cx| im.act(cx, Activation::Abs)),
    ("Erf", |im, cx| im.act(cx, Activation::Erf)),
    ("Softplus", |im, cx| im.act(cx, Activation::Softplus)),
    ("Softsign", |im, cx| im.act(cx, Activation::Softsign)),
    ("Mish", |im, cx| im.act(cx, Activation::Mish)),
    ("Ceil", |im, cx| im.act(cx, Activation::Ceil)),
    ("Floor", |im, cx| im.act(cx, Activation::Floor)),
    ("Round", |im, cx| im.act(cx, Activation::Round)),
    ("Sign", |im, cx| im.act(cx, Activation::Sign)),
    // elementwise.rs: selection, comparisons and logic
    ("Where", |im, cx| im.where_op(cx)),
    ("Equal", |im, cx| im.compare(cx)),
    ("Less", |im, cx| im.compare(cx)),
    ("Greater", |im, cx| im.compare(cx)),
    ("LessOrEqual", |im, cx| im.compare(cx)),
    ("GreaterOrEqual", |im, cx| im.compare(cx)),
    ("And", |im, cx| im.compare(cx)),
    ("Or", |im, cx| im.compare(cx)),
    ("Not", |im, cx| im.compare(cx)),
    // conv.rs
    ("Conv", |im, cx| im.conv(cx)),
    ("ConvTranspose", |im, cx| im.conv_transpose(cx)),
    // matmul.rs
    ("Gemm", |im, cx| im.gemm(cx)),
    ("MatMul", |im, cx| im.matmul(cx)),
    // pool.rs
    ("MaxPool", |im, cx| im.pool(cx)),
    ("AveragePool", |im, cx| im.pool(cx)),
    ("GlobalAveragePool", |im, cx| im.global_avg_pool(cx)),
    ("GlobalMaxPool", |im, cx| im.global_max_pool(cx)),
    ("ReduceMean", |im, cx| im.reduce(cx)),
    ("ReduceSum", |im, cx| im.reduce(cx)),
    ("ReduceMax", |im, cx| im.reduce(cx)),
    ("ReduceMin", |im, cx| im.reduce(cx)),
    // norm.rs
    ("BatchNormalization", |im, cx| im.batch_norm(cx)),
    ("LayerNormalization", |im, cx| im.layer_norm(cx)),
    ("Softmax", |im, cx| im.softmax(cx)),
];

/// Every ONNX op type (default domain) the importer handles, in registry order.
pub const SUPPORTED_OPS: &[&str] = &{
    let mut names = [""; REGISTRY.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = REGISTRY[i].0;
        i += 1;
    }
    names
};

/// The handler of an ONNX op type (default domain), `None` if it is not supported.
pub(super) fn handler(op: &str) -> Option<Handler> {
    REGISTRY
        .iter()
        .find(|(name, _)| *name == op)
        .map(|&(_, import)| import)
}

#[cfg(test)]
mod tests {
    use super::{handler, REGISTRY, SUPPORTED_OPS};
    use std::collections::BTreeSet;

    #[test]
    fn every_op_is_registered_once() {
        let names: BTreeSet<&str> = REGISTRY.iter().map(|(name, _)| *name).collect();
        assert_eq!(names.len(), REGISTRY.len(), "an op is registered twice");
    }

    #[test]
    fn supported_ops_are_the_registry() {
        assert_eq!(SUPPORTED_OPS.len(), REGISTRY.len());
        assert!(SUPPORTED_OPS.iter().all(|op| handler(op).is_some()));
        assert!(handler("NoSuchOp").is_none());
    }
}
