//! Waiting without stalling a busy machine: [`Signal`] (a counter to wait on) and the
//! [`Barrier`] handed to kernels that need one inside (the SE kernel), through
//! [`barrier_wait`]. A waiter spins briefly, then sleeps on a futex.
//!
//! Why both: kernels are short (often 10-100 µs) and on an idle machine the threads of one
//! run arrive within microseconds of each other, so a short spin avoids a futex round trip
//! (a wake costs several microseconds). On a busy machine, though, a thread that spins while
//! the thread it waits for is preempted burns the very core that thread needs, and keeps
//! burning it for its whole time slice; parking hands the core back to the scheduler, and a
//! sleeper that is woken is scheduled promptly (it has used little CPU time). The spin is
//! bounded in time, not in iterations, so its cost does not depend on the CPU's `pause`
//! latency. `atomic-wait` is the futex (Linux), `__ulock` (macOS) or `WaitOnAddress`
//! (Windows) primitive std itself uses, as a small crate.
use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a waiter spins before it parks. Long enough for the threads of one kernel to
/// arrive on an idle machine, short against a scheduler time slice (~3 ms).
pub(crate) const SPIN: Duration = Duration::from_micros(40);

/// A counter that threads wait on: spin for at most [`SPIN`], then sleep on a futex until a
/// condition on its value holds. The barrier and the runtime's per-kernel completion counts
/// are both built on it.
#[derive(Default)]
pub struct Signal {
    value: AtomicU32,
    /// threads asleep (or about to sleep) on `value`: an update makes the wake system call
    /// only when this is non-zero, so an idle machine pays no syscall
    sleepers: AtomicU32,
}

impl Signal {
    /// The current value (Acquire: what was written before the update that made it is
    /// visible).
    pub fn get(&self) -> u32 {
        self.value.load(Ordering::Acquire)
    }

    /// Adds `n`; wakes the sleepers when `wake(new value)`. Returns the new value.
    pub fn add(&self, n: u32, wake: impl Fn(u32) -> bool) -> u32 {
        // SeqCst pairs with the waiter's SeqCst increment of `sleepers`: either this load
        // sees the sleeper, or the sleeper's futex wait sees the new value.
        let v = self.value.fetch_add(n, Ordering::SeqCst).wrapping_add(n);
        if wake(v) && self.sleepers.load(Ordering::SeqCst) > 0 {
            atomic_wait::wake_all(&self.value);
        }
        v
    }

    /// Returns once `blocked(value)` is false; spins first when `spin`.
    pub fn wait_while(&self, spin: bool, blocked: impl Fn(u32) -> bool) {
        if !blocked(self.get()) {
            return;
        }
        if spin && self.spin_while(&blocked) {
            return;
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        loop {
            let v = self.value.load(Ordering::SeqCst);
            if !blocked(v) {
                break;
            }
            // returns when woken, spuriously, or at once if the value is no longer `v`
            atomic_wait::wait(&self.value, v);
        }
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Spins for at most [`SPIN`]; true if the condition cleared meanwhile.
    fn spin_while(&self, blocked: &impl Fn(u32) -> bool) -> bool {
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                if !blocked(self.get()) {
                    return true;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= SPIN {
                return false;
            }
        }
    }
}

/// A reusable barrier for exactly `n` threads (used inside kernels such as the SE kernel,
/// whose phases need every thread's share of the previous phase).
pub struct Barrier {
    /// threads that meet here (set by the team that runs the next kernel, before it starts)
    n: AtomicU32,
    /// spin before parking (false when there are more threads than cores: the thread waited
    /// for may need this core)
    spin: bool,
    count: AtomicU32,
    generation: Signal,
}

impl Barrier {
    /// A barrier for `n` threads; `spin` says whether waiters may spin before parking.
    pub fn new(n: usize, spin: bool) -> Self {
        Barrier {
            n: AtomicU32::new(u32::try_from(n).unwrap_or(u32::MAX)),
            spin,
            count: AtomicU32::new(0),
            generation: Signal::default(),
        }
    }

    /// Sets the number of threads that meet here; only while no thread is waiting (the
    /// write is published to them by whatever starts them).
    pub fn set_n(&self, n: u32) {
        self.n.store(n, Ordering::Relaxed);
    }

    /// Blocks until all `n` threads have called `wait` in this generation.
    pub fn wait(&self) {
        let n = self.n.load(Ordering::Relaxed);
        if n <= 1 {
            return;
        }
        let gen = self.generation.get();
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == n {
            self.count.store(0, Ordering::Relaxed);
            self.generation.add(1, |_| true);
            return;
        }
        self.generation.wait_while(self.spin, |g| g == gen);
    }
}

/// The barrier callback handed to kernels: `ctx` is a `*const Barrier`.
pub extern "C" fn barrier_wait(ctx: *mut c_void) {
    // SAFETY: the runtime passes a pointer to a Barrier that outlives the kernel call
    // (it lives on the stack frame of `Model::run`, which waits for all pool threads).
    let b = unsafe { &*(ctx as *const Barrier) };
    b.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Every thread sees every other thread's writes of the previous phase, with and
    /// without spinning, and with more threads than cores.
    fn phases(threads: usize, spin: bool) {
        let b = Barrier::new(threads, spin);
        let counter = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for phase in 1..=200 {
                        counter.fetch_add(1, Ordering::Relaxed);
                        b.wait();
                        assert_eq!(counter.load(Ordering::Relaxed), phase * threads);
                        b.wait();
                    }
                });
            }
        });
    }

    #[test]
    fn barrier_orders_phases() {
        phases(2, true);
        phases(3, false);
        phases(8, true);
    }

    /// A thread that arrives late (sleeping past the spin budget) finds the others parked
    /// and wakes them.
    #[test]
    fn late_arrival_wakes_parked_threads() {
        let b = Barrier::new(3, true);
        std::thread::scope(|s| {
            for i in 0..3 {
                let b = &b;
                s.spawn(move || {
                    for _ in 0..5 {
                        if i == 0 {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        b.wait();
                    }
                });
            }
        });
        assert_eq!(b.generation.sleepers.load(Ordering::Relaxed), 0);
    }
}
