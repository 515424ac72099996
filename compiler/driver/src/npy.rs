//! .npy input and output through ndarray-npy (C order): float32 inputs, float32 or int64
//! outputs.
use anyhow::{Context, Result};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{read_npy, WriteNpyExt};
use std::path::Path;

/// Reads a float32 .npy file.
pub fn read(p: &Path) -> Result<secc_runtime::Tensor> {
    let a: ArrayD<f32> = read_npy(p)
        .with_context(|| format!("{} is not a readable float32 .npy array", p.display()))?;
    let shape = a.shape().to_vec();
    let a = a.as_standard_layout();
    let data = a.as_slice().context("array is not contiguous")?;
    Ok(secc_runtime::Tensor::from_slice(shape, data)?)
}

/// A float32 or int64 .npy file's bytes (the output's own element type; written by the
/// caller, atomically).
pub fn to_bytes(t: &secc_runtime::Tensor) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match t.dtype {
        secc_runtime::DType::F32 => {
            ArrayD::from_shape_vec(IxDyn(&t.shape), t.data.clone())?.write_npy(&mut bytes)?
        }
        secc_runtime::DType::I64 => {
            ArrayD::from_shape_vec(IxDyn(&t.shape), t.ints.clone())?.write_npy(&mut bytes)?
        }
    }
    Ok(bytes)
}
