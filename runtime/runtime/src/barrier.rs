//! A sense-counting spin barrier for the pool threads: kernels are short, so spinning (then
//! yielding) beats a futex round trip. Called between kernels and, through
//! [`barrier_wait`], from inside kernels that need a barrier (the SE kernel).
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A reusable barrier for exactly `n` threads.
pub struct SpinBarrier {
    n: usize,
    count: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    /// A barrier for `n` threads.
    pub fn new(n: usize) -> Self {
        SpinBarrier {
            n,
            count: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Blocks until all `n` threads have called `wait` in this generation.
    pub fn wait(&self) {
        if self.n <= 1 {
            return;
        }
        let gen = self.generation.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.count.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == gen {
            if spins < 20_000 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The barrier callback handed to kernels: `ctx` is a `*const SpinBarrier`.
pub extern "C" fn barrier_wait(ctx: *mut c_void) {
    // SAFETY: the runtime passes a pointer to a SpinBarrier that outlives the kernel call
    // (it lives on the stack frame of `Model::run`, which waits for all pool threads).
    let b = unsafe { &*(ctx as *const SpinBarrier) };
    b.wait();
}
