//! The launch contract of a CUDA kernel: its grid (expressions of the symbols, so a batch
//! of 8 gets 8 times the CTAs of one image), its block, its dynamic shared memory and its
//! parameter list. The code generator writes it; the CUDA executor launches exactly this,
//! so no second copy of the kernel ABI exists anywhere.
use crate::DimDecl;
use serde::{Deserialize, Serialize};

/// Most threads in one CTA (every architecture since sm_20).
pub const MAX_BLOCK_THREADS: u32 = 1024;
/// Most CTAs along the grid's x axis.
pub const MAX_GRID_X: u64 = (1 << 31) - 1;
/// Most CTAs along the grid's y and z axes.
pub const MAX_GRID_YZ: u64 = 65535;
/// Most dynamic shared memory a CTA may ask for on any architecture secc targets (sm_90:
/// 227 KiB after opting in); the executor also checks the device's own limit.
pub const MAX_SHARED_BYTES: u32 = 227 * 1024;

/// How one kernel is launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchDecl {
    /// CTAs along x, y and z
    pub grid: [DimDecl; 3],
    /// threads per CTA along x, y and z
    pub block: [u32; 3],
    /// bytes of dynamic shared memory per CTA
    pub shared_bytes: u32,
    /// the kernel's parameters, in order
    pub params: Vec<ParamDecl>,
}

/// One kernel parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamDecl {
    /// the device address of buffer `id` (a 64-bit pointer)
    Buffer(u32),
    /// the value of symbol `i` (a signed 64-bit integer)
    Symbol(u32),
}

/// A launch's extents under one binding of the symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchDims {
    /// CTAs along x, y and z, each within the hardware limits
    pub grid: [u32; 3],
    /// threads per CTA
    pub block: [u32; 3],
    /// dynamic shared memory bytes per CTA
    pub shared_bytes: u32,
}

impl LaunchDecl {
    /// Checks the contract against the manifest: well-formed grid expressions, a block of
    /// 1 to [`MAX_BLOCK_THREADS`] threads, shared memory within [`MAX_SHARED_BYTES`],
    /// parameters naming buffers among the kernel's `args` (so the memory plan keeps
    /// them alive) and existing symbols.
    pub fn check(&self, nsyms: usize, args: &[u32]) -> Result<(), String> {
        for (axis, d) in self.grid.iter().enumerate() {
            d.check(nsyms)
                .map_err(|m| format!("grid axis {axis}: {m}"))?;
        }
        let threads = self
            .block
            .iter()
            .try_fold(1u32, |a, &b| a.checked_mul(b))
            .unwrap_or(0);
        if threads == 0 || threads > MAX_BLOCK_THREADS {
            return Err(format!(
                "a block of {:?} threads (1 to {MAX_BLOCK_THREADS} in all)",
                self.block
            ));
        }
        if self.shared_bytes > MAX_SHARED_BYTES {
            return Err(format!(
                "{} bytes of shared memory (at most {MAX_SHARED_BYTES})",
                self.shared_bytes
            ));
        }
        for p in &self.params {
            match *p {
                ParamDecl::Buffer(b) if !args.contains(&b) => {
                    return Err(format!(
                        "parameter buffer {b} is not among the kernel's args"
                    ))
                }
                ParamDecl::Symbol(s) if s as usize >= nsyms => {
                    return Err(format!("parameter symbol {s} does not exist"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The launch for a binding of the symbols; `None` when an axis has no CTAs (the
    /// kernel has nothing to do, e.g. an empty tensor). An axis that is undefined for the
    /// binding or over the hardware limit is an error naming it.
    pub fn dims(&self, syms: &[u64]) -> Result<Option<LaunchDims>, String> {
        let mut grid = [0u32; 3];
        for (axis, d) in self.grid.iter().enumerate() {
            let limit = if axis == 0 { MAX_GRID_X } else { MAX_GRID_YZ };
            match d.eval(syms) {
                Some(0) => return Ok(None),
                Some(v) if v <= limit => grid[axis] = v as u32,
                Some(v) => {
                    return Err(format!(
                        "grid axis {axis} needs {v} CTAs, more than the {limit} a GPU launches"
                    ))
                }
                None => return Err(format!("grid axis {axis} is undefined for this binding")),
            }
        }
        Ok(Some(LaunchDims {
            grid,
            block: self.block,
            shared_bytes: self.shared_bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::DimOp;

    fn per_image() -> LaunchDecl {
        LaunchDecl {
            grid: [
                DimDecl::Sym { sym: 0, coeff: 1 },
                DimDecl::Known(1),
                DimDecl::Known(1),
            ],
            block: [128, 1, 1],
            shared_bytes: 4 * 80,
            params: vec![
                ParamDecl::Buffer(0),
                ParamDecl::Buffer(1),
                ParamDecl::Symbol(0),
            ],
        }
    }

    #[test]
    fn a_contract_is_checked_against_the_manifest() {
        let ok = per_image();
        ok.check(1, &[0, 1]).unwrap();
        let cases: Vec<(LaunchDecl, &str)> = vec![
            (
                LaunchDecl {
                    block: [0, 1, 1],
                    ..ok.clone()
                },
                "a block of",
            ),
            (
                LaunchDecl {
                    block: [64, 32, 1],
                    ..ok.clone()
                },
                "a block of",
            ),
            (
                LaunchDecl {
                    block: [u32::MAX, 2, 1],
                    ..ok.clone()
                },
                "a block of",
            ),
            (
                LaunchDecl {
                    shared_bytes: MAX_SHARED_BYTES + 4,
                    ..ok.clone()
                },
                "shared memory",
            ),
            (
                LaunchDecl {
                    params: vec![ParamDecl::Buffer(7)],
                    ..ok.clone()
                },
                "not among the kernel's args",
            ),
            (
                LaunchDecl {
                    params: vec![ParamDecl::Symbol(1)],
                    ..ok.clone()
                },
                "symbol 1",
            ),
            (
                LaunchDecl {
                    grid: [
                        DimDecl::Expr {
                            expr: vec![DimOp::Add],
                        },
                        DimDecl::Known(1),
                        DimDecl::Known(1),
                    ],
                    ..ok.clone()
                },
                "grid axis 0",
            ),
        ];
        for (l, want) in cases {
            let e = l.check(1, &[0, 1]).unwrap_err();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
    }

    #[test]
    fn the_grid_follows_the_binding() {
        let l = per_image();
        let d = l.dims(&[8]).unwrap().unwrap();
        assert_eq!(d.grid, [8, 1, 1]);
        assert_eq!(d.block, [128, 1, 1]);
        // a grid-stride kernel over ceil(N * 1000 / 128) CTAs, at most 8192
        let work = DimDecl::Expr {
            expr: vec![
                DimOp::Sym(0),
                DimOp::Const(1000),
                DimOp::Mul,
                DimOp::CeilDiv(128),
                DimOp::Const(8192),
                DimOp::Min,
            ],
        };
        let g = LaunchDecl {
            grid: [work, DimDecl::Known(1), DimDecl::Known(1)],
            ..l.clone()
        };
        assert_eq!(g.dims(&[3]).unwrap().unwrap().grid[0], 24);
        assert_eq!(g.dims(&[5000]).unwrap().unwrap().grid[0], 8192);
        // no CTAs: nothing to launch; too many: refused with the axis
        let empty = LaunchDecl {
            grid: [DimDecl::Known(0), DimDecl::Known(1), DimDecl::Known(1)],
            ..l.clone()
        };
        assert_eq!(empty.dims(&[1]).unwrap(), None);
        let wide = LaunchDecl {
            grid: [
                DimDecl::Known(1),
                DimDecl::Sym { sym: 0, coeff: 1 },
                DimDecl::Known(1),
            ],
            ..l
        };
        assert!(wide
            .dims(&[70000])
            .unwrap_err()
            .contains("grid axis 1 needs 70000"));
    }
}
