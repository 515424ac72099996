//! Stage timings of one compilation: printed as progress on a terminal once the compile
//! has taken over a second, in full with `--timings`, and as `timings_ms` in JSON.
use crate::out::note;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Completed stages, in order.
pub struct Stages {
    start: Instant,
    done: Vec<(String, Duration)>,
    printed: usize,
    progress: bool,
}

impl Stages {
    /// A new clock; progress lines only go to a terminal.
    pub fn new() -> Self {
        Stages {
            start: Instant::now(),
            done: vec![],
            printed: 0,
            progress: std::io::stderr().is_terminal(),
        }
    }

    /// Runs `f` as stage `name`.
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        self.record(name, t.elapsed());
        r
    }

    /// Records a stage timed elsewhere (a pass).
    pub fn record(&mut self, name: &str, d: Duration) {
        self.done.push((name.to_string(), d));
        if self.progress && self.start.elapsed() >= Duration::from_secs(1) {
            for (n, d) in &self.done[self.printed..] {
                note!(
                    "[{:>7.2} s] {n} ({:.2} s)",
                    self.start.elapsed().as_secs_f64(),
                    d.as_secs_f64()
                );
            }
            self.printed = self.done.len();
        }
    }

    /// Every stage with its time, and the total (for `--timings`).
    pub fn print(&self) {
        for (n, d) in &self.done {
            note!("{n:<40} {:>10.3} ms", d.as_secs_f64() * 1e3);
        }
        note!(
            "{:<40} {:>10.3} ms",
            "total",
            self.start.elapsed().as_secs_f64() * 1e3
        );
    }

    /// `[{"stage": ..., "ms": ...}, ...]` plus the total.
    pub fn json(&self) -> serde_json::Value {
        let mut v: Vec<serde_json::Value> = self
            .done
            .iter()
            .map(|(n, d)| serde_json::json!({"stage": n, "ms": ms(*d)}))
            .collect();
        v.push(serde_json::json!({"stage": "total", "ms": ms(self.start.elapsed())}));
        v.into()
    }
}

/// Milliseconds with microsecond resolution.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
