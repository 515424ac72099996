//! Model inputs from the command line: `--input NAME=FILE.npy`, `FILE.npy` for a
//! single-input model, `FILE.npz` (arrays by input name), and deterministic random inputs.
use crate::npy;
use crate::out::note;
use anyhow::{bail, Context, Result};
use secc_runtime::Tensor;
use std::collections::BTreeMap;
use std::path::Path;

/// Deterministic pseudo-random values in [-1, 1) (xorshift64*), the same on every machine.
pub fn random(shape: Vec<usize>, seed: u64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            (r as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    Ok(Tensor::new(shape, data)?)
}

/// The artifact's input shapes for random inputs: the dimensions `given` fixes (by input
/// name, `None` keeps a dimension open) take those values and bind their symbols; every
/// other batch symbol (an input's leading dim) is `batch`, every other symbol `side`.
pub fn shapes(
    m: &secc_artifact::Manifest,
    batch: u64,
    side: u64,
    given: &BTreeMap<String, Vec<Option<u64>>>,
) -> Result<Vec<Vec<usize>>> {
    let mut syms = m.sizing_binding(batch, side);
    let mut bound = vec![false; syms.len()];
    let decl = |i: &secc_artifact::IoDecl| &m.buffers[i.buffer as usize].shape;
    for (name, dims) in given {
        let Some(io) = m.inputs.iter().find(|i| &i.name == name) else {
            let names: Vec<&str> = m.inputs.iter().map(|i| i.name.as_str()).collect();
            bail!(
                "--input-shape {name}: no input named {name:?} (inputs: {})",
                names.join(", ")
            );
        };
        let shape = decl(io);
        if shape.len() != dims.len() {
            bail!(
                "--input-shape {name}: {} dimensions given, input {name:?} has rank {}",
                dims.len(),
                shape.len()
            );
        }
        for (k, (d, v)) in shape.iter().zip(dims).enumerate() {
            let (secc_artifact::DimDecl::Sym { sym, coeff }, Some(v)) = (d, *v) else {
                continue; // known and expression dims are checked below
            };
            let s = *sym as usize;
            if !v.is_multiple_of(*coeff) || (bound[s] && syms[s] != v / coeff) {
                bail!(
                    "--input-shape {name}: dimension {k} is {v}, which contradicts {:?} = {} \
                     (from the other dimensions given)",
                    m.symbols[s],
                    syms[s] * coeff
                );
            }
            (syms[s], bound[s]) = (v / coeff, true);
        }
    }
    m.inputs
        .iter()
        .map(|i| {
            let shape: Vec<usize> = decl(i)
                .iter()
                .map(|d| d.eval(&syms).map(|v| v as usize))
                .collect::<Option<Vec<_>>>()
                .with_context(|| format!("input {:?} has a shape secc cannot bind", i.name))?;
            for (k, v) in given.get(&i.name).into_iter().flatten().enumerate() {
                if let Some(v) = v.filter(|&v| v as usize != shape[k]) {
                    bail!(
                        "--input-shape {}: dimension {k} is {v}, but the model requires {}",
                        i.name,
                        shape[k]
                    );
                }
            }
            Ok(shape)
        })
        .collect()
}

/// One random tensor per input (seed 1, 2, ... in input order).
pub fn random_inputs(
    m: &secc_artifact::Manifest,
    batch: u64,
    side: u64,
    given: &BTreeMap<String, Vec<Option<u64>>>,
) -> Result<Vec<Tensor>> {
    shapes(m, batch, side, given)?
        .into_iter()
        .zip(1u64..)
        .map(|(s, seed)| random(s, seed))
        .collect()
}

fn take(
    given: &mut BTreeMap<String, Tensor>,
    name: String,
    a: npy::Input,
    from: &str,
) -> Result<()> {
    if let Some(n) = &a.note {
        note!("note: input {name:?} from {from}: {n}");
    }
    if given.insert(name.clone(), a.tensor).is_some() {
        bail!("input {name:?} given twice");
    }
    Ok(())
}

/// Reads `--input` specs for a model with inputs `names`: `NAME=FILE.npy`, `FILE.npy` (one
/// input), `FILE.npz` (each array is the input of its name; one array for a one-input
/// model may have any name). Every input must be given exactly once.
pub fn load(specs: &[String], names: &[String]) -> Result<Vec<Tensor>> {
    let mut given = BTreeMap::new();
    for spec in specs {
        let check = |name: &str| {
            if !names.iter().any(|n| n == name) {
                bail!(
                    "--input {spec:?}: the model has no input named {name:?} (inputs: {})",
                    names.join(", ")
                );
            }
            Ok(())
        };
        if spec.ends_with(".npz") && !spec.contains('=') {
            let arrays = npy::read_npz(Path::new(spec))?;
            let single = arrays.len() == 1 && names.len() == 1;
            for (n, a) in arrays {
                let n = if single { names[0].clone() } else { n };
                check(&n)?;
                take(&mut given, n, a, spec)?;
            }
            continue;
        }
        let (name, file) = match spec.split_once('=') {
            Some((n, f)) => (n.to_string(), f),
            None if names.len() == 1 => (names[0].clone(), spec.as_str()),
            None => bail!(
                "--input {spec:?}: give NAME=FILE.npy or FILE.npz (model inputs: {})",
                names.join(", ")
            ),
        };
        check(&name)?;
        let a = npy::read(Path::new(file))
            .with_context(|| format!("reading input {name:?} from {file}"))?;
        take(&mut given, name, a, file)?;
    }
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| !given.contains_key(*n))
        .map(|s| s.as_str())
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing input(s): {} (give --input NAME=FILE.npy, a .npz, or --random-inputs)",
            missing.join(", ")
        );
    }
    Ok(names
        .iter()
        .map(|n| given.remove(n).expect("invariant: checked above"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_deterministic_and_in_range() {
        let a = random(vec![2, 50], 7).expect("tensor");
        assert_eq!(a.data, random(vec![2, 50], 7).expect("tensor").data);
        assert_ne!(a.data, random(vec![2, 50], 8).expect("tensor").data);
        assert!(a.data.iter().all(|v| (-1.0..1.0).contains(v)));
    }
}
