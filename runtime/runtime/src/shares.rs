//! Dynamic shares: how the pool threads divide a kernel that needs no barrier inside.
//!
//! Each such kernel is cut into `threads * SHARES_PER_THREAD` contiguous shares (the kernel
//! computes its range from `(share, nshares)` as it would from `(tid, nthreads)`). Thread
//! `t` owns shares `t*K .. t*K+K` and runs them in order, so on an idle machine every
//! thread covers the same contiguous range it would with one share per thread (its data
//! stays in its caches from one kernel to the next). A thread that has finished its own
//! shares takes the unclaimed shares of the others: on a busy machine, a thread the
//! scheduler has not run yet, or has preempted, delays the kernel by at most the share it
//! is in, not by its whole range (that wait, at every kernel, made two threads 3-17x slower
//! than one under a CPU hog per core). Claims are one atomic add on a counter per
//! (kernel, owner), each on its own cache line; so is each kernel's count of finished
//! shares, which the next kernel waits on (not on the threads: a thread that has not
//! shown up is not waited for).
use crate::barrier::Signal;
use std::sync::atomic::{AtomicU32, Ordering};

/// Shares each thread owns per kernel. More shares make the part of a kernel a preempted
/// thread can hold up smaller, at one more kernel call each (tens of nanoseconds).
pub const SHARES_PER_THREAD: u32 = 4;

/// A claim counter alone on its cache line (no false sharing between owners).
#[repr(align(64))]
#[derive(Default)]
struct Slot(AtomicU32);

/// A finished-shares count alone on its cache line.
#[repr(align(64))]
#[derive(Default)]
struct Done(Signal);

/// Claim counters for every (kernel, owner) of one run, and finished counts per kernel.
pub struct Shares {
    threads: usize,
    slots: Vec<Slot>,
    done: Vec<Done>,
}

impl Shares {
    /// Counters for `kernels` kernels on `threads` threads.
    pub fn new(kernels: usize, threads: usize) -> Self {
        Shares {
            threads,
            slots: (0..kernels * threads).map(|_| Slot::default()).collect(),
            done: (0..kernels).map(|_| Done::default()).collect(),
        }
    }

    /// Records that `n` more shares of kernel `k` are finished (Release: their writes are
    /// visible to whoever sees the count) and wakes waiters once `total` are.
    pub fn finish(&self, k: usize, n: u32, total: u32) {
        self.done[k].0.add(n, |v| v >= total);
    }

    /// Waits until `total` shares of kernel `k` are finished.
    pub fn wait(&self, k: usize, total: u32, spin: bool) {
        self.done[k].0.wait_while(spin, |v| v < total);
    }

    /// Total shares of a kernel.
    pub fn count(&self) -> u32 {
        self.threads as u32 * SHARES_PER_THREAD
    }

    /// Runs `run(share)` for each share of kernel `k` that thread `tid` claims: its own
    /// first, in order, then those the other threads have not claimed yet.
    pub fn run(&self, k: usize, tid: usize, mut run: impl FnMut(u32)) {
        let row = &self.slots[k * self.threads..(k + 1) * self.threads];
        for owner in (tid..self.threads).chain(0..tid) {
            loop {
                // Relaxed: the share index is all a claim carries; the kernels' data is
                // ordered by the barrier between kernels.
                let j = row[owner].0.fetch_add(1, Ordering::Relaxed);
                if j >= SHARES_PER_THREAD {
                    break;
                }
                run(owner as u32 * SHARES_PER_THREAD + j);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Every share runs exactly once whatever the interleaving, including when one thread
    /// never shows up.
    #[test]
    fn each_share_runs_once() {
        for threads in [1, 2, 3, 5] {
            for _ in 0..2 {
                let s = Shares::new(3, threads);
                let seen: Vec<AtomicUsize> =
                    (0..3 * s.count()).map(|_| AtomicUsize::new(0)).collect();
                std::thread::scope(|sc| {
                    // thread `threads - 1` is absent: the others must take its shares
                    for tid in 0..threads.saturating_sub(1).max(1) {
                        let (s, seen) = (&s, &seen);
                        sc.spawn(move || {
                            for k in 0..3 {
                                s.run(k, tid, |j| {
                                    seen[k * s.count() as usize + j as usize]
                                        .fetch_add(1, Ordering::Relaxed);
                                });
                            }
                        });
                    }
                });
                assert!(seen.iter().all(|c| c.load(Ordering::Relaxed) == 1));
            }
        }
    }

    /// On its own, a thread runs exactly its own shares, in order.
    #[test]
    fn owner_runs_its_range_in_order() {
        let s = Shares::new(1, 3);
        let mut got = vec![];
        s.run(0, 1, |j| got.push(j));
        let k = SHARES_PER_THREAD;
        let want: Vec<u32> = (k..2 * k).chain(2 * k..3 * k).chain(0..k).collect();
        assert_eq!(got, want);
    }
}
