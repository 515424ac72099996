//! .npy and .npz inputs (C or Fortran order; float32, or float64 / float16 / integers cast
//! to float32 with a note) and .npy outputs (float32 or int64, through ndarray-npy).
use anyhow::{bail, Context, Result};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use ndarray_npy::WriteNpyExt;
use std::path::Path;

/// An input array: the tensor, and a note when its element type was cast to float32.
pub struct Input {
    /// the float32 tensor
    pub tensor: secc_runtime::Tensor,
    /// e.g. "cast from float64 to float32"
    pub note: Option<String>,
}

/// Reads a .npy file.
pub fn read(p: &Path) -> Result<Input> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    parse(&bytes).with_context(|| format!("{} is not a readable .npy array", p.display()))
}

/// Reads every array of a .npz file (`np.savez` or `np.savez_compressed`), by name (the
/// member name without `.npy`).
pub fn read_npz(p: &Path) -> Result<Vec<(String, Input)>> {
    use std::io::Read;
    let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut z =
        zip::ZipArchive::new(f).with_context(|| format!("{} is not a .npz file", p.display()))?;
    let mut out = vec![];
    for i in 0..z.len() {
        let mut m = z.by_index(i)?;
        let name = m.name().trim_end_matches(".npy").to_string();
        let mut bytes = vec![];
        m.read_to_end(&mut bytes)
            .with_context(|| format!("reading {name:?} in {}", p.display()))?;
        let a = parse(&bytes).with_context(|| format!("array {name:?} in {}", p.display()))?;
        out.push((name, a));
    }
    Ok(out)
}

/// The header fields secc needs: element type, order, shape.
struct Header {
    descr: String,
    fortran: bool,
    shape: Vec<usize>,
}

fn header(bytes: &[u8]) -> Result<(Header, usize)> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("no .npy magic");
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => bail!("unsupported .npy version {v}"),
    };
    let text = bytes
        .get(start..start + len)
        .context("truncated .npy header")?;
    let text = std::str::from_utf8(text).context(".npy header is not text")?;
    let field = |key: &str| -> Result<&str> {
        let i = text
            .find(&format!("'{key}'"))
            .with_context(|| format!("header has no {key:?}"))?;
        Ok(text[i + key.len() + 2..].trim_start_matches([':', ' ']))
    };
    let d = field("descr")?;
    let descr = d
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .context("bad descr")?
        .to_string();
    let fortran = field("fortran_order")?.starts_with("True");
    let s = field("shape")?;
    let s = s
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .context("bad shape")?;
    let shape = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<usize>().context("bad shape extent"))
        .collect::<Result<Vec<_>>>()?;
    Ok((
        Header {
            descr,
            fortran,
            shape,
        },
        start + len,
    ))
}

/// Decodes element bytes of type `descr` (`<f4`, `>f8`, `<f2`, `<i8`, ...) to f32.
fn decode(descr: &str, data: &[u8], n: usize) -> Result<(Vec<f32>, Option<&'static str>)> {
    let (order, kind) = descr.split_at(1);
    let big = order == ">";
    if !["<", ">", "|", "="].contains(&order) {
        bail!("unsupported element type {descr:?}");
    }
    let w: usize = kind[1..].parse().context("bad element size")?;
    if data.len() < n * w {
        bail!(
            "array data is truncated ({} of {} bytes)",
            data.len(),
            n * w
        );
    }
    let word = |c: &[u8]| -> u64 {
        let mut b = [0u8; 8];
        if big {
            b[..w].copy_from_slice(&c.iter().rev().copied().collect::<Vec<_>>());
        } else {
            b[..w].copy_from_slice(c);
        }
        u64::from_le_bytes(b)
    };
    let it = data[..n * w].chunks_exact(w).map(word);
    Ok(match &kind[..1] {
        "f" if w == 4 => (it.map(|b| f32::from_bits(b as u32)).collect(), None),
        "f" if w == 8 => (
            it.map(|b| f64::from_bits(b) as f32).collect(),
            Some("float64"),
        ),
        "f" if w == 2 => (
            it.map(|b| half::f16::from_bits(b as u16).to_f32())
                .collect(),
            Some("float16"),
        ),
        "i" if [1, 2, 4, 8].contains(&w) => {
            let sh = 64 - 8 * w as u32;
            (
                it.map(|b| (((b << sh) as i64) >> sh) as f32).collect(),
                Some("an integer type"),
            )
        }
        "u" | "b" if [1, 2, 4, 8].contains(&w) => {
            (it.map(|b| b as f32).collect(), Some("an integer type"))
        }
        _ => bail!("unsupported element type {descr:?} (float32, float64, float16, integers)"),
    })
}

/// Parses .npy bytes into a float32 tensor (C order).
pub fn parse(bytes: &[u8]) -> Result<Input> {
    let (h, start) = header(bytes)?;
    let n = h
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .context("element count overflows")?;
    let (mut data, cast) = decode(&h.descr, &bytes[start..], n)?;
    if h.fortran && h.shape.len() > 1 {
        let a = ArrayD::from_shape_vec(IxDyn(&h.shape).f(), data)?;
        data = a.as_standard_layout().iter().copied().collect();
    }
    Ok(Input {
        tensor: secc_runtime::Tensor::new(h.shape, data)?,
        note: cast.map(|c| format!("cast from {c} to float32")),
    })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, fortran: bool, data: &[u8]) -> Vec<u8> {
        let h = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({shape}), }}",
            if fortran { "True" } else { "False" }
        );
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.bytes());
        b.extend(data);
        b
    }

    #[test]
    fn float_types_are_cast_with_a_note() {
        let f64s: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<f8", "2,", false, &f64s)).unwrap();
        assert_eq!(a.tensor.data, vec![1.5, -2.0]);
        assert_eq!(a.note.as_deref(), Some("cast from float64 to float32"));
        let f16s: Vec<u8> = [half::f16::from_f32(0.5), half::f16::from_f32(3.0)]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<f2", "1, 2", false, &f16s)).unwrap();
        assert_eq!(
            (a.tensor.shape.clone(), a.tensor.data),
            (vec![1, 2], vec![0.5, 3.0])
        );
        let be: Vec<u8> = [7.0f32].iter().flat_map(|v| v.to_be_bytes()).collect();
        let a = parse(&npy(">f4", "1,", false, &be)).unwrap();
        assert_eq!((a.tensor.data, a.note), (vec![7.0], None));
    }

    #[test]
    fn fortran_order_is_transposed_and_garbage_refused() {
        let d: Vec<u8> = [1f32, 2., 3., 4., 5., 6.]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<f4", "2, 3", true, &d)).unwrap();
        assert_eq!(a.tensor.data, vec![1., 3., 5., 2., 4., 6.]);
        assert!(parse(b"not an array").is_err());
        assert!(parse(&npy("<f4", "2, 3", false, &d[..8])).is_err());
        assert!(parse(&npy("<c8", "1,", false, &d)).is_err());
    }
}
