//! Buffer allocation. Large buffers ask the kernel for transparent huge pages before they are
//! first touched: with 4 KiB pages, a streaming kernel over tens of MB spends much of its
//! time in TLB misses (nested paging in VMs makes each one dearer), measured here as 3.5 GB/s
//! vs 11 GB/s for the same loop on huge pages.
const HUGE: usize = 2 << 20;

use crate::RuntimeError;

fn reserve(n: usize) -> Result<Vec<f32>, RuntimeError> {
    let mut v: Vec<f32> = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        RuntimeError::Memory(format!("cannot allocate {} bytes", n.saturating_mul(4)))
    })?;
    advise_huge(v.as_mut_ptr() as *mut u8, n * 4);
    Ok(v)
}

/// A zeroed `Vec<f32>` of `n` elements, backed by huge pages where the OS allows; an
/// allocation failure is an error, not an abort.
pub fn zeroed(n: usize) -> Result<Vec<f32>, RuntimeError> {
    let mut v = reserve(n)?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Bytes every [`Aligned`] buffer starts on: one cache line, so that the kernels' vector
/// loads never split one. (A large `Vec<f32>` comes from glibc's `mmap` path at 16 bytes
/// past a page: every 64-byte load of weights or temporaries then touched two lines,
/// measured 8-10% slower on a 1x1 convolution, Sapphire Rapids.)
pub const LINE: usize = 64;
const LINE_FLOATS: usize = LINE / 4;

/// `len` floats starting on a [`LINE`] boundary, allocated like [`zeroed`]'s. A `Vec` with
/// a few floats of slack in front, not a custom allocation, so nothing here needs `unsafe`.
#[derive(Default)]
pub struct Aligned {
    buf: Vec<f32>,
    off: usize,
}

impl Aligned {
    /// `n` values from `values`, zero past their end.
    pub fn collected(n: usize, values: impl Iterator<Item = f32>) -> Result<Self, RuntimeError> {
        let mut buf = reserve(n.saturating_add(LINE_FLOATS))?;
        let off = (buf.as_ptr() as usize).wrapping_neg() % LINE / 4;
        buf.resize(off, 0.0);
        buf.extend(values.take(n));
        buf.resize(off + n, 0.0);
        Ok(Aligned { buf, off })
    }

    /// `n` zeroes.
    pub fn zeroed(n: usize) -> Result<Self, RuntimeError> {
        Self::collected(n, std::iter::empty())
    }

    /// The floats.
    pub fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..]
    }

    /// Start of the floats, for kernels that write them.
    pub fn as_mut_ptr(&mut self) -> *mut f32 {
        self.buf[self.off..].as_mut_ptr()
    }

    /// Number of floats.
    pub fn len(&self) -> usize {
        self.buf.len() - self.off
    }
}

/// A copy of `data` in a buffer from [`zeroed`].
pub fn copied(data: &[f32]) -> Result<Vec<f32>, RuntimeError> {
    let mut v = reserve(data.len())?;
    v.extend_from_slice(data);
    Ok(v)
}

fn advise_huge(p: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        if len < 2 * HUGE {
            return;
        }
        let start = (p as usize).div_ceil(HUGE) * HUGE;
        let end = (p as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: [start, end) lies inside the allocation just reserved by the caller
            // (capacity >= len); MADV_HUGEPAGE only changes how the kernel backs those pages
            // and never invalidates memory. Failure is harmless, so the result is ignored.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (p, len, HUGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_start_on_a_line_and_keep_their_values() {
        for n in [0usize, 1, 15, 17, 1000, 3 << 20] {
            let a = Aligned::collected(n, (0..n).map(|i| i as f32)).unwrap();
            assert_eq!(a.as_slice().as_ptr() as usize % LINE, 0, "n = {n}");
            assert_eq!(a.len(), n);
            assert!(a.as_slice().iter().enumerate().all(|(i, &v)| v == i as f32));
            let mut z = Aligned::zeroed(n).unwrap();
            assert_eq!(z.as_mut_ptr() as usize % LINE, 0);
            assert!(z.as_slice().iter().all(|&v| v == 0.0));
        }
        // fewer values than floats: the rest are zero
        let short = Aligned::collected(5, [1.0f32, 2.0].into_iter()).unwrap();
        assert_eq!(short.as_slice(), &[1.0, 2.0, 0.0, 0.0, 0.0]);
    }
}
