//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]
use rand::{Rng, SeedableRng};
use secc_ir::interp::Tensor;
use secc_ir::Graph;
use std::path::{Path, PathBuf};

pub mod build;

pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// All fixtures, sorted by name.
pub fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(models_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    v.sort();
    v
}

/// The whole networks of tests/models/exporters, sorted by name.
pub fn exporter_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(models_dir().join("exporters"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    v.sort();
    v
}

/// Fixtures and exporter networks: what the soundness and rule-coverage checks run on.
pub fn all_models() -> Vec<PathBuf> {
    let mut v = fixtures();
    v.extend(exporter_fixtures());
    v
}

/// Code generation for the host CPU, no memory limit.
pub fn cpu_opts() -> secc_codegen::CodegenOptions {
    secc_codegen::CodegenOptions {
        target: secc_codegen::Target::Cpu {
            cpu: "native".into(),
        },
        compiler_version: "test".into(),
        memory_limit: None,
        gpu_form: false,
        winograd: true,
    }
}

pub fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

pub fn import(p: &Path) -> Graph {
    secc_onnx::import_file(p, &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Fresh random inputs (uniform in [-2, 2), never all zeros) for the graph at `batch`.
pub fn random_inputs(g: &Graph, batch: u64, seed: u64) -> Vec<Tensor> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let syms = vec![batch; g.sym_names.len()];
    g.inputs
        .iter()
        .map(|(_, id)| {
            let shape = g.node(*id).outputs[0].eval(&syms).unwrap();
            let n: usize = shape.iter().product();
            Tensor::new(
                shape,
                (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect(),
            )
        })
        .collect()
}

/// Max |a - b| / (1 + |b|) over all elements; asserts equal shapes and element types.
/// int64 tensors must be equal: any difference is an infinite error.
pub fn max_rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape, b.shape, "shape mismatch");
    assert_eq!(a.dtype, b.dtype, "element type mismatch");
    if a.ints != b.ints {
        return f32::INFINITY;
    }
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

/// A runtime output as an interpreter tensor, whatever its element type.
pub fn from_runtime(t: &secc_runtime::Tensor) -> Tensor {
    match t.dtype {
        secc_runtime::DType::F32 => Tensor::new(t.shape.clone(), t.data.clone()),
        secc_runtime::DType::I64 => Tensor::new_i64(t.shape.clone(), t.ints.clone()),
    }
}

pub fn count_se(g: &Graph) -> usize {
    g.node_ids()
        .into_iter()
        .filter(|n| g.node(*n).op.is_se_block())
        .count()
}

/// The number of SE blocks each fixture must fuse into.
pub fn expected_se(name: &str) -> usize {
    match name {
        "se_paddle" | "se_two_blocks" | "se_scale_bias_add" => 2,
        n if n.starts_with("se_") => 1,
        _ => 0,
    }
}

/// The default pipeline and the host CPU's lowering (blocked layouts), as `secc` runs them.
pub fn run_passes(g: &mut Graph) -> secc_passes::PassManager {
    run_passes_for(g, secc_codegen::vector_block(&cpu_opts().target))
}

/// The default pipeline and the lowering for channel blocks of `block` floats.
pub fn run_passes_for(g: &mut Graph, block: Option<u32>) -> secc_passes::PassManager {
    let t = secc_passes::pipeline::TargetOptions { block };
    let mut passes = secc_passes::pipeline::default_pipeline();
    passes.extend(secc_passes::pipeline::lowering(&t));
    let mut pm = secc_passes::PassManager::new(passes);
    pm.run(g, |_, _| {}).unwrap();
    pm
}

pub mod npy {
    //! Minimal reader for the little-endian f32 / i64 C-order .npy files the fixture script
    //! writes.
    pub fn read_f32(p: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
        let t = read(p);
        assert_eq!(t.dtype, secc_ir::DType::F32, "{}: not float32", p.display());
        (t.shape, t.data)
    }

    /// A float32 or int64 array.
    pub fn read(p: &std::path::Path) -> super::Tensor {
        let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(&b[..6], b"\x93NUMPY");
        let (hlen, start) = if b[6] == 1 {
            (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
        } else {
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        };
        let h = std::str::from_utf8(&b[start..start + hlen]).unwrap();
        let int64 = h.contains("'descr': '<i8'");
        assert!(
            (int64 || h.contains("'descr': '<f4'")) && h.contains("'fortran_order': False"),
            "{h}"
        );
        let s = &h[h.find("'shape': (").unwrap() + 10..];
        let s = &s[..s.find(')').unwrap()];
        let shape: Vec<usize> = s
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().parse().unwrap())
            .collect();
        let body = &b[start + hlen..];
        if int64 {
            let ints = body
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            return super::Tensor::new_i64(shape, ints);
        }
        let data = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        super::Tensor::new(shape, data)
    }
}
