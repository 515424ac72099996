//! Whole small networks in the node patterns of tf2onnx 1.16 (Keras MobileNetV3Small: NHWC
//! input, Transposes, Pad before strided depthwise convs, hard-swish as Clip arithmetic) and
//! Paddle2ONNX 1.0 (PP-OCRv3 det: Constant-node weights, Conv+BatchNormalization, opset 11
//! hard-swish, Identity nodes, nearest Resize, ConvTranspose), from
//! tests/models/gen_exporters.py: every SE block fuses, outputs match ONNX Runtime within
//! 1e-4 max abs (after the models' own Softmax / Sigmoid), and the artifact runs any batch.
#![allow(clippy::unwrap_used)] // tests fail loudly by design
mod common;
use common::*;
use secc_codegen::compile;

/// Max |secc - ORT| on the models' probability outputs.
const TOL: f32 = 1e-4;

#[test]
fn exporter_networks_fuse_se_and_match_onnx_runtime() {
    let dir = models_dir().join("exporters");
    for name in ["tf2onnx_mobilenetv3_small", "paddle2onnx_ppocr_det"] {
        let model = dir.join(format!("{name}.onnx"));
        let want_se: u32 = std::fs::read_to_string(dir.join(format!("{name}.se_blocks")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut g = import(&model);
        run_passes(&mut g);
        assert_eq!(count_se(&g) as u32, want_se, "{name}: fused SE blocks");
        let bytes = compile(&g, &cpu_opts()).unwrap();
        let m = secc_runtime::Model::from_bytes(bytes, 2).unwrap();
        let (xs, x) = npy::read_f32(&dir.join(format!("{name}.in0.npy")));
        let (ys, want) = npy::read_f32(&dir.join(format!("{name}.ort0.npy")));
        let y = m
            .run(&[secc_runtime::Tensor::new(xs.clone(), x.clone()).unwrap()])
            .unwrap();
        assert_eq!(y[0].shape, ys, "{name}: output shape");
        let e = y[0]
            .data
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(e <= TOL, "{name}: differs from ONNX Runtime by {e}");
        // the same artifact at batch 1: image 0 alone
        let per = x.len() / xs[0];
        let mut s1 = xs.clone();
        s1[0] = 1;
        let y1 = m
            .run(&[secc_runtime::Tensor::new(s1, x[..per].to_vec()).unwrap()])
            .unwrap();
        let out_per = want.len() / ys[0];
        let e1 = y1[0]
            .data
            .iter()
            .zip(&want[..out_per])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(e1 <= TOL, "{name}: batch 1 differs by {e1}");
    }
}
