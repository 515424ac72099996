//! Decoding `TensorProto` payloads (raw little-endian data, typed fields, external files).
use onnx_protobuf::TensorProto;
use std::path::{Path, PathBuf};

/// A decoded constant.
#[derive(Debug, Clone)]
pub(crate) enum ConstVal {
    /// float tensor (f32, or f64/f16 converted)
    F32(Vec<usize>, Vec<f32>),
    /// integer tensor (int64/int32/int8/uint8/bool...), widened
    I64(Vec<usize>, Vec<i64>),
}

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;
const INT64: i32 = 7;
const BOOL: i32 = 9;
const FLOAT16: i32 = 10;
const DOUBLE: i32 = 11;

pub(crate) fn dtype_name(t: i32) -> &'static str {
    match t {
        FLOAT => "float32",
        UINT8 => "uint8",
        INT8 => "int8",
        4 => "uint16",
        5 => "int16",
        INT32 => "int32",
        INT64 => "int64",
        8 => "string",
        BOOL => "bool",
        FLOAT16 => "float16",
        DOUBLE => "float64",
        16 => "bfloat16",
        _ => "unknown",
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let s = ((h >> 15) & 1) as u32;
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as u32;
    let v = if e == 0 {
        (m as f32) * 2f32.powi(-24)
    } else if e == 31 {
        if m == 0 {
            f32::INFINITY
        } else {
            f32::NAN
        }
    } else {
        (1.0 + m as f32 / 1024.0) * 2f32.powi(e - 15)
    };
    if s == 1 {
        -v
    } else {
        v
    }
}

/// What a file type is, in words, for errors ("a FIFO (named pipe)", "a directory"); the
/// CLI uses it too, for paths it refuses to replace.
pub fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_char_device() {
            return "a character device";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Reads external data, refusing any location that leaves `base` (the model's folder).
fn read_external(t: &TensorProto, base: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut loc = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        match kv.key.as_str() {
            "location" => loc = Some(kv.value.clone()),
            "offset" => {
                offset = kv
                    .value
                    .parse()
                    .map_err(|_| format!("bad external offset {:?}", kv.value))?
            }
            "length" => {
                length = Some(
                    kv.value
                        .parse::<u64>()
                        .map_err(|_| format!("bad external length {:?}", kv.value))?,
                )
            }
            _ => {}
        }
    }
    let loc = loc.ok_or("external data without 'location'")?;
    let base = base.ok_or("external data needs the model's folder (load the model from a file)")?;
    let rel = Path::new(&loc);
    if rel.is_absolute()
        || rel.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
    {
        return Err(format!(
            "external data location {loc:?} leaves the model's folder; refused"
        ));
    }
    let path: PathBuf = base.join(rel);
    let canon_base = base
        .canonicalize()
        .map_err(|e| format!("model folder: {e}"))?;
    let canon = path
        .canonicalize()
        .map_err(|e| format!("external data file {loc:?}: {e}"))?;
    if !canon.starts_with(&canon_base) {
        return Err(format!(
            "external data location {loc:?} resolves outside the model's folder; refused"
        ));
    }
    // a FIFO would block the read forever and a device can be endless: regular files only
    let meta = std::fs::metadata(&canon).map_err(|e| format!("external data file {loc:?}: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "external data file {loc:?} is not a regular file (it is {})",
            file_kind(&meta.file_type())
        ));
    }
    let bytes = std::fs::read(&canon).map_err(|e| format!("external data file {loc:?}: {e}"))?;
    let start = offset as usize;
    let end = match length {
        Some(l) => start
            .checked_add(l as usize)
            .ok_or("external data range overflows")?,
        None => bytes.len(),
    };
    if start > bytes.len() || end > bytes.len() {
        return Err(format!(
            "external data {loc:?}: range {start}..{end} beyond file size {}",
            bytes.len()
        ));
    }
    Ok(bytes[start..end].to_vec())
}

/// Decodes a tensor. `base` is the model's folder, for external data.
pub(crate) fn decode(t: &TensorProto, base: Option<&Path>) -> Result<ConstVal, String> {
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(format!("negative dimension {d}"));
        }
        shape.push(d as usize);
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("element count overflows")?;
    let external = t.data_location.value() == 1;
    let raw_owned;
    let raw: &[u8] = if external {
        raw_owned = read_external(t, base)?;
        &raw_owned
    } else {
        &t.raw_data
    };
    let has_raw = external || !t.raw_data.is_empty();
    let check = |len: usize| {
        if len != n {
            Err(format!(
                "holds {len} elements but its shape {shape:?} needs {n}"
            ))
        } else {
            Ok(())
        }
    };
    let from_raw = |w: usize| -> Result<Vec<&[u8]>, String> {
        if raw.len() != n * w {
            return Err(format!(
                "raw data has {} bytes, expected {} for shape {shape:?}",
                raw.len(),
                n * w
            ));
        }
        Ok(raw.chunks_exact(w).collect())
    };
    let dt = t.data_type;
    match dt {
        FLOAT => {
            let v: Vec<f32> = if has_raw {
                from_raw(4)?
                    .iter()
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                t.float_data.clone()
            };
            check(v.len())?;
            Ok(ConstVal::F32(shape, v))
        }
        DOUBLE => {
            let v: Vec<f32> = if has_raw {
                from_raw(8)?
                    .iter()
                    .map(|c| {
                        f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                    })
                    .collect()
            } else {
                t.double_data.iter().map(|&x| x as f32).collect()
            };
            check(v.len())?;
            Ok(ConstVal::F32(shape, v))
        }
        FLOAT16 => {
            let v: Vec<f32> = if has_raw {
                from_raw(2)?
                    .iter()
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect()
            } else {
                t.int32_data.iter().map(|&x| f16_to_f32(x as u16)).collect()
            };
            check(v.len())?;
            Ok(ConstVal::F32(shape, v))
        }
        INT64 => {
            let v: Vec<i64> = if has_raw {
                from_raw(8)?
                    .iter()
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect()
            } else {
                t.int64_data.clone()
            };
            check(v.len())?;
            Ok(ConstVal::I64(shape, v))
        }
        INT32 => {
            let v: Vec<i64> = if has_raw {
                from_raw(4)?
                    .iter()
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect()
            } else {
                t.int32_data.iter().map(|&x| x as i64).collect()
            };
            check(v.len())?;
            Ok(ConstVal::I64(shape, v))
        }
        INT8 | UINT8 | BOOL => {
            let v: Vec<i64> = if has_raw {
                from_raw(1)?
                    .iter()
                    .map(|c| {
                        if dt == INT8 {
                            c[0] as i8 as i64
                        } else {
                            c[0] as i64
                        }
                    })
                    .collect()
            } else {
                t.int32_data.iter().map(|&x| x as i64).collect()
            };
            check(v.len())?;
            Ok(ConstVal::I64(shape, v))
        }
        other => Err(format!(
            "data type {} ({other}) is not supported",
            dtype_name(other)
        )),
    }
}

/// A tensor read from a serialized `TensorProto` file (an ONNX test's `input_0.pb`).
#[derive(Debug, Clone, PartialEq)]
pub enum TensorFile {
    /// float32 (float64 and float16 converted)
    F32 {
        /// the tensor's name in the file (may be empty)
        name: String,
        /// extents
        shape: Vec<usize>,
        /// row-major elements
        data: Vec<f32>,
    },
    /// an integer or bool tensor, widened to int64
    I64 {
        /// the tensor's name in the file (may be empty)
        name: String,
        /// extents
        shape: Vec<usize>,
        /// row-major elements
        data: Vec<i64>,
    },
}

/// Decodes a serialized `TensorProto` (no external data).
pub fn read_tensor_proto(bytes: &[u8]) -> Result<TensorFile, crate::ImportError> {
    use onnx_protobuf::Message;
    let t = TensorProto::parse_from_bytes(bytes)
        .map_err(|e| crate::ImportError::Parse(format!("TensorProto: {e}")))?;
    let name = t.name.clone();
    let bad = |msg| crate::ImportError::Tensor {
        name: name.clone(),
        msg,
    };
    if t.data_location.value() == 1 {
        return Err(bad("external data is not supported in a tensor file".into()));
    }
    Ok(match decode(&t, None).map_err(bad)? {
        ConstVal::F32(shape, data) => TensorFile::F32 { name, shape, data },
        ConstVal::I64(shape, data) => TensorFile::I64 { name, shape, data },
    })
}
