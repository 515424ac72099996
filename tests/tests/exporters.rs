//! Whole small networks in tests/models/exporters: from the real exporters (see [`REAL`],
//! made by tests/models/gen_real_exporters.py), and hand-built in the node patterns of
//! tf2onnx 1.16 (Keras MobileNetV3Small: NHWC input, Transposes, Pad before strided depthwise
//! convs, hard-swish as Clip arithmetic) and Paddle2ONNX 1.0 (PP-OCRv3 det: Constant-node
//! weights, Conv+BatchNormalization, opset 11 hard-swish, Identity nodes, nearest Resize,
//! ConvTranspose) by tests/models/gen_exporters.py. Every SE block fuses, outputs match ONNX
//! Runtime within 1e-4 max abs, and the artifact runs any batch.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::*;
use secc_codegen::compile;

/// Max |secc - ORT| on the models' outputs (probabilities, or logits of magnitude < 1).
const TOL: f32 = 1e-4;

/// The fixtures of tests/models/gen_real_exporters.py.
const REAL: &[&str] = &[
    "torch_script_se_glue",
    "torch_dynamo_se_glue",
    "timm_efficientnet_same",
    "timm_mobilenetv3_same",
    "tf2onnx_keras_se",
    "tf2onnx_keras_se_noopt",
];

/// Checks one network of tests/models/exporters: fused SE count, output against ONNX Runtime
/// at the stored batch, and image 0 alone at batch 1. Returns what went wrong.
fn check_network(name: &str) -> Result<(), String> {
    let dir = models_dir().join("exporters");
    let model = dir.join(format!("{name}.onnx"));
    let want_se: usize = std::fs::read_to_string(dir.join(format!("{name}.se_blocks")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut g = secc_onnx::import_file(&model, &Default::default())
        .map_err(|e| format!("{name}: import: {e}"))?;
    run_passes(&mut g);
    let got_se = count_se(&g);
    if got_se != want_se {
        return Err(format!("{name}: fused {got_se} of {want_se} SE blocks"));
    }
    let bytes = compile(&g, &cpu_opts()).map_err(|e| format!("{name}: compile: {e}"))?;
    let mut m = secc_runtime::Model::from_bytes(bytes)
        .and_then(|m| m.session(2))
        .unwrap();
    let (xs, x) = npy::read_f32(&dir.join(format!("{name}.in0.npy")));
    let (ys, want) = npy::read_f32(&dir.join(format!("{name}.ort0.npy")));
    let y = m
        .run(&[secc_runtime::Tensor::new(xs.clone(), x.clone()).unwrap()])
        .unwrap();
    if y[0].shape != ys {
        return Err(format!(
            "{name}: output shape {:?}, want {ys:?}",
            y[0].shape
        ));
    }
    let max_err = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max)
    };
    let e = max_err(&y[0].data, &want);
    if e > TOL {
        return Err(format!("{name}: differs from ONNX Runtime by {e}"));
    }
    // the same artifact at batch 1: image 0 alone
    let per = x.len() / xs[0];
    let mut s1 = xs.clone();
    s1[0] = 1;
    let y1 = m
        .run(&[secc_runtime::Tensor::new(s1, x[..per].to_vec()).unwrap()])
        .unwrap();
    let e1 = max_err(&y1[0].data, &want[..want.len() / ys[0]]);
    if e1 > TOL {
        return Err(format!("{name}: batch 1 differs by {e1}"));
    }
    Ok(())
}

fn check_all(names: &[&str]) {
    let failures: Vec<String> = names
        .iter()
        .filter_map(|n| check_network(n).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn exporter_networks_fuse_se_and_match_onnx_runtime() {
    check_all(&["tf2onnx_mobilenetv3_small", "paddle2onnx_ppocr_det"]);
}

/// Networks written by the real exporters (tests/models/gen_real_exporters.py): PyTorch's
/// TorchScript and dynamo exporters (`g[:, :, None, None]`, `.view(b, c, 1, 1)` + Expand,
/// Flatten / unsqueeze glue, nn.Linear as Gemm or MatMul + Add, channels-last FCs), timm's
/// "same" padding (a Shape / Slice / Transpose subgraph computing the Pad), and tf2onnx with
/// and without its optimizers (Squeeze / Reshape glue, Keras' hard sigmoid, NHWC with
/// Transposes around every Conv).
#[test]
fn real_exporter_networks_fuse_every_se_block_and_match_onnx_runtime() {
    check_all(REAL);
}
