//! One run of a model's kernels on the calling thread and the pool.
//!
//! The calling thread (share owner 0) and `threads - 1` pool jobs all walk the kernel list.
//! A kernel without a barrier inside is cut into dynamic shares ([`Shares`]); the next
//! kernel starts on a thread once every share of the previous one is finished, whichever
//! threads ran them. So on a busy machine the caller can run a whole model alone while a
//! worker waits to be scheduled: the run does not wait for threads, only for work.
//!
//! A pool job that starts after the run has ended must not touch its buffers (they belong
//! to the caller's frame). Jobs therefore enter through a [`Gate`]: the run closes it when
//! its last kernel is finished and then waits only for the jobs that already entered.
//! Everything a late job touches before the gate turns it away is owned by the `Arc<Run>`.
use crate::barrier::{barrier_wait, Barrier, Signal, SPIN};
use crate::cpu::KernelFn;
use crate::shares::Shares;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How long a team leader waits for a thread that has not even entered the run: on an idle
/// machine a woken pool thread enters within microseconds; one that is not scheduled would
/// cost the whole [`SPIN`] at every such kernel.
const ABSENT_WAIT: std::time::Duration = std::time::Duration::from_micros(5);

/// Gate value bit: the run is over, no job may enter.
const CLOSED: u32 = 1 << 31;

/// Entry control for pool jobs: the count of jobs inside, and the closed bit.
#[derive(Default)]
struct Gate(Signal);

impl Gate {
    /// True if the job may run (then it must call [`Gate::leave`]).
    fn enter(&self) -> bool {
        if self.0.add(1, |_| false) & CLOSED != 0 {
            self.leave();
            return false;
        }
        true
    }

    /// Jobs inside the run now.
    fn inside(&self) -> u32 {
        self.0.get() & !CLOSED
    }

    fn leave(&self) {
        // wrapping add of -1; wake the closer when the last job inside leaves
        self.0.add(u32::MAX, |v| v == CLOSED);
    }

    /// Closes the gate and waits until no job is inside.
    fn close(&self, spin: bool) {
        self.0.add(CLOSED, |_| false);
        self.0.wait_while(spin, |v| v != CLOSED);
    }
}

/// Who runs one kernel with a barrier inside. Such a kernel needs all its shares at once, so
/// it cannot be shared out dynamically; instead the threads that are there form a team:
/// the first to arrive waits (spinning, at most [`SPIN`]) for the others, then closes the
/// team, and the kernel runs with as many shares as members. A thread arriving later skips
/// the kernel. On an idle machine every thread joins; on a busy one a thread that is not
/// running is not waited for.
#[repr(align(64))]
#[derive(Default)]
struct Team {
    /// arrivals, and [`CLOSED`] once the team is formed
    arrivals: std::sync::atomic::AtomicU32,
    /// the team's size, 0 until it is formed
    size: Signal,
}

/// A thread's place in a kernel's team.
enum Role {
    /// runs share `index` of `size`
    Member { index: u32, size: u32 },
    /// came too late: the kernel is the team's
    Late,
}

impl Team {
    /// Joins; `present()` counts the threads that have entered the run (a thread that has
    /// not entered yet is probably not scheduled: it is waited for only [`ABSENT_WAIT`]).
    fn join(&self, threads: u32, wait: bool, present: impl Fn() -> u32) -> Role {
        let v = self.arrivals.fetch_add(1, Ordering::AcqRel);
        if v & CLOSED != 0 {
            return Role::Late;
        }
        if v == 0 {
            // the leader: wait briefly for the others, then close the team
            let start = Instant::now();
            while wait && self.arrivals.load(Ordering::Acquire) < threads {
                let t = start.elapsed();
                if t >= SPIN || (t >= ABSENT_WAIT && present() < threads) {
                    break;
                }
                std::hint::spin_loop();
            }
            let size = self.arrivals.fetch_or(CLOSED, Ordering::AcqRel) & !CLOSED;
            return Role::Member { index: 0, size };
        }
        Role::Member {
            index: v,
            size: 0, // learnt from `size` once the leader has closed the team
        }
    }
}

/// Everything one run needs, shared by the caller and the pool jobs.
pub struct Run {
    kernels: Vec<KernelFn>,
    /// per kernel: a barrier inside (all `threads` shares at once, no stealing)
    barrier_inside: Vec<bool>,
    /// per kernel: its argument pointers
    args: Vec<Vec<*mut f32>>,
    syms: Vec<i64>,
    threads: usize,
    spin: bool,
    shares: Shares,
    /// per kernel (used by those with a barrier inside)
    teams: Vec<Team>,
    barrier: Barrier,
    gate: Gate,
    /// per-kernel nanoseconds measured on the caller (`Model::profile`)
    pub nanos: Option<Vec<AtomicU64>>,
}

// SAFETY: the pointers refer to buffers owned by the caller of `Model::run` (inputs,
// outputs, the arena, the weights). They are dereferenced only by kernels called from
// `work`, which runs on the caller, or on a pool job between `Gate::enter` and
// `Gate::leave`; the caller closes the gate and waits for every job inside before it
// returns, so no kernel runs once those buffers may be gone. Kernels write only their
// declared outputs, which the memory plan keeps disjoint from everything live at once.
unsafe impl Send for Run {}
// SAFETY: as above; the shared state itself is atomics.
unsafe impl Sync for Run {}

impl Run {
    /// A run of `kernels` with one argument list each.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kernels: Vec<KernelFn>,
        barrier_inside: Vec<bool>,
        args: Vec<Vec<*mut f32>>,
        syms: Vec<i64>,
        threads: usize,
        spin: bool,
        profile: bool,
    ) -> Self {
        let n = kernels.len();
        Run {
            shares: Shares::new(n, threads),
            teams: (0..n).map(|_| Team::default()).collect(),
            barrier: Barrier::new(threads, spin),
            gate: Gate::default(),
            nanos: profile.then(|| (0..n).map(|_| AtomicU64::new(0)).collect()),
            kernels,
            barrier_inside,
            args,
            syms,
            threads,
            spin,
        }
    }

    /// Runs every kernel: on the calling thread, and on `threads - 1` jobs of `pool`.
    pub fn execute(self: &Arc<Self>, pool: Option<&rayon::ThreadPool>) {
        match pool {
            Some(pool) if self.threads > 1 => {
                for t in 1..self.threads {
                    let run = Arc::clone(self);
                    pool.spawn(move || {
                        if run.gate.enter() {
                            run.work(t);
                            run.gate.leave();
                        }
                    });
                }
                self.work(0);
                self.gate.close(self.spin);
            }
            _ => self.work_alone(),
        }
    }

    /// One thread, no atomics.
    fn work_alone(&self) {
        for k in 0..self.kernels.len() {
            let t0 = self.nanos.is_some().then(Instant::now);
            self.call(k, 0, 1);
            self.record(k, t0);
        }
    }

    fn work(&self, tid: usize) {
        for k in 0..self.kernels.len() {
            let t0 = (tid == 0 && self.nanos.is_some()).then(Instant::now);
            let total = if self.barrier_inside[k] {
                self.team_kernel(k, tid)
            } else {
                let total = self.shares.count();
                self.shares.run(k, tid, |j| {
                    self.call(k, i64::from(j), i64::from(total));
                    self.shares.finish(k, 1, total);
                });
                total
            };
            self.shares.wait(k, total, self.spin);
            self.record(k, t0);
        }
    }

    /// Runs kernel `k` (a barrier inside) as a member of its team, or not at all if late;
    /// returns the team's size, the number of shares to wait for.
    fn team_kernel(&self, k: usize, tid: usize) -> u32 {
        let team = &self.teams[k];
        let n = self.threads as u32;
        let present = || 1 + self.gate.inside();
        let (index, size) = match team.join(n, self.spin, present) {
            Role::Member { index: 0, size } => {
                // no one waits in the barrier now: the previous kernel is finished
                self.barrier.set_n(size);
                team.size.add(size, |_| true);
                (0, size)
            }
            Role::Member { index, .. } => {
                team.size.wait_while(self.spin, |s| s == 0);
                (index, team.size.get())
            }
            Role::Late => {
                team.size.wait_while(self.spin, |s| s == 0);
                return team.size.get();
            }
        };
        // a full team keeps each thread on its usual range (its data is in its caches)
        let share = if size == n { tid as u32 } else { index };
        self.call(k, i64::from(share), i64::from(size));
        self.shares.finish(k, 1, size);
        size
    }

    fn record(&self, k: usize, t0: Option<Instant>) {
        if let (Some(t0), Some(ns)) = (t0, &self.nanos) {
            ns[k].fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// Calls kernel `k` for share `share` of `of`.
    fn call(&self, k: usize, share: i64, of: i64) {
        // SAFETY: the kernel has the KernelFn signature; its argument array holds one valid
        // pointer per declared buffer of the sizes it was compiled for (the caller bound and
        // checked the symbols); a kernel computes its work range from (share, of) alone, so
        // any share count is valid; `self` (the barrier) outlives the call; see `Run`'s Send
        // impl for why the buffers are alive.
        unsafe {
            (self.kernels[k])(
                self.args[k].as_ptr(),
                self.syms.as_ptr(),
                share,
                of,
                barrier_wait,
                &self.barrier as *const Barrier as *mut c_void,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Counts calls per share in `args[0]` (64 counters) and keeps the share count in
    /// `args[1]`; with `BARRIER` it meets the other shares twice, as the SE kernel does.
    extern "C" fn count<const BARRIER: bool>(
        args: *const *mut f32,
        _syms: *const i64,
        share: i64,
        of: i64,
        bar: extern "C" fn(*mut c_void),
        ctx: *mut c_void,
    ) {
        // SAFETY: the test passes two pointers to live AtomicU32 arrays.
        let (slots, size) = unsafe {
            (
                &*(*args as *const [AtomicU32; 64]),
                &*(*args.add(1) as *const AtomicU32),
            )
        };
        if BARRIER {
            bar(ctx);
        }
        slots[share as usize].fetch_add(1, Ordering::Relaxed);
        size.store(of as u32, Ordering::Relaxed);
        if BARRIER {
            bar(ctx);
        }
    }

    /// Per-kernel counters, and a run of [`count`] kernels (`kinds`: barrier inside) over them.
    fn counting_run(
        kinds: &[bool],
        threads: usize,
        spin: bool,
    ) -> (Vec<[AtomicU32; 64]>, Vec<AtomicU32>, Arc<Run>) {
        let slots: Vec<[AtomicU32; 64]> = kinds
            .iter()
            .map(|_| std::array::from_fn(|_| AtomicU32::new(0)))
            .collect();
        let sizes: Vec<AtomicU32> = kinds.iter().map(|_| AtomicU32::new(0)).collect();
        let kernels: Vec<KernelFn> = kinds
            .iter()
            .map(|&b| {
                if b {
                    count::<true> as KernelFn
                } else {
                    count::<false>
                }
            })
            .collect();
        // the counters live in the Vecs' heap buffers, which moving the Vecs keeps in place
        let args = slots
            .iter()
            .zip(&sizes)
            .map(|(s, n)| vec![s.as_ptr() as *mut f32, n as *const _ as *mut f32])
            .collect();
        let run = Run::new(kernels, kinds.to_vec(), args, vec![], threads, spin, false);
        (slots, sizes, Arc::new(run))
    }

    /// Every share of every kernel runs exactly once, barrier kernels with a team of 1 to
    /// `threads` shares, for several thread counts (more than cores included).
    #[test]
    fn every_share_runs_once() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(5)
            .build()
            .unwrap();
        for threads in [1usize, 2, 3, 5] {
            for _ in 0..50 {
                let kinds = [false, true, false, false, true, true, false];
                let (slots, sizes, run) =
                    counting_run(&kinds, threads, threads <= crate::available_cores());
                run.execute(Some(&pool));
                for (k, &b) in kinds.iter().enumerate() {
                    let n = sizes[k].load(Ordering::Relaxed) as usize;
                    if b {
                        assert!((1..=threads).contains(&n), "team of {n}");
                    } else if threads > 1 {
                        assert_eq!(n, threads * crate::shares::SHARES_PER_THREAD as usize);
                    }
                    for (j, c) in slots[k].iter().enumerate() {
                        let want = u32::from(j < n.max(1));
                        assert_eq!(c.load(Ordering::Relaxed), want, "kernel {k} share {j}");
                    }
                }
            }
        }
    }

    /// A run does not wait for a pool thread that never shows up (one descheduled by a busy
    /// machine; here, one kept busy by another job): the caller runs every share, barrier
    /// kernels as a team of one. With the thread-counting barrier this hung.
    #[test]
    fn run_completes_without_the_workers() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        pool.spawn(move || {
            let _ = blocked.recv();
        });
        let (done, finished) = std::sync::mpsc::channel();
        let pool = Arc::new(pool);
        let p2 = Arc::clone(&pool);
        std::thread::spawn(move || {
            let kinds = [false, true, false];
            let (slots, _sizes, run) = counting_run(&kinds, 2, true);
            run.execute(Some(&p2));
            let ran: Vec<u32> = slots
                .iter()
                .map(|s| s.iter().map(|c| c.load(Ordering::Relaxed)).sum())
                .collect();
            let _ = done.send(ran);
        });
        let ran = finished
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the run waited for a worker that was not there");
        let _ = release.send(());
        let k = 2 * crate::shares::SHARES_PER_THREAD;
        assert_eq!(ran, vec![k, 1, k]);
    }
}
