//! The pass trait and the manager that owns the cross-cutting work: verification after each
//! pass, error context naming the pass, timing, and printing after a pass.
use secc_ir::{print::print, Graph, VerifyErrors};
use std::time::{Duration, Instant};

/// Whether a pass changed the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// something changed
    Yes,
    /// nothing changed
    No,
}

impl From<bool> for Changed {
    fn from(b: bool) -> Self {
        if b {
            Changed::Yes
        } else {
            Changed::No
        }
    }
}

/// Notes a pass leaves for reports and snapshots (e.g. the e-graph run summary).
#[derive(Debug, Default, Clone)]
pub struct PassLog {
    /// `(pass, line)` in the order written
    pub lines: Vec<(&'static str, String)>,
}

/// Errors of the pass layer.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// A pass failed.
    #[error("running pass {pass}: {msg}")]
    InPass {
        /// pass name
        pass: &'static str,
        /// what failed
        msg: String,
    },
    /// The graph did not verify after a pass (a compiler bug).
    #[error("IR verification after pass {pass} failed:\n{errors}\nIR:\n{ir}")]
    Verify {
        /// pass name
        pass: &'static str,
        /// the findings
        errors: VerifyErrors,
        /// the IR printed at that point
        ir: String,
    },
    /// A pass name given on the command line does not exist.
    #[error("unknown pass {0:?} (known: {1})")]
    UnknownPass(String, String),
}

/// A graph pass.
pub trait Pass {
    /// Name used in errors, `--print-after` and timing.
    fn name(&self) -> &'static str;
    /// Runs in place.
    fn run(&self, g: &mut Graph, log: &mut PassLog) -> Result<Changed, PassError>;
}

/// Which passes to print the IR after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PrintAfter {
    /// none
    #[default]
    None,
    /// every pass (and the imported graph)
    All,
    /// the named passes
    Some(Vec<String>),
}

/// Runs passes in order, verifying after each.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    /// where to print
    pub print_after: PrintAfter,
    /// per-pass time of the last run
    pub timings: Vec<(&'static str, Duration)>,
    /// notes of the last run
    pub log: PassLog,
}

impl PassManager {
    /// A manager over the given passes.
    pub fn new(passes: Vec<Box<dyn Pass>>) -> Self {
        PassManager {
            passes,
            print_after: PrintAfter::None,
            timings: vec![],
            log: PassLog::default(),
        }
    }

    /// Names of the passes, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    fn wants(&self, name: &str) -> bool {
        match &self.print_after {
            PrintAfter::None => false,
            PrintAfter::All => true,
            PrintAfter::Some(v) => v.iter().any(|n| n == name),
        }
    }

    /// Runs every pass once, in order. `dump` receives `(pass name, IR text)` for each
    /// requested print; "import" is the graph before the first pass.
    pub fn run(
        &mut self,
        g: &mut Graph,
        mut dump: impl FnMut(&str, &str),
    ) -> Result<(), PassError> {
        self.timings.clear();
        self.log = PassLog::default();
        g.verify().map_err(|errors| PassError::Verify {
            pass: "import",
            errors,
            ir: print(g),
        })?;
        if self.wants("import") {
            dump("import", &print(g));
        }
        for p in &self.passes {
            let t = Instant::now();
            p.run(g, &mut self.log)?;
            self.timings.push((p.name(), t.elapsed()));
            g.verify().map_err(|errors| PassError::Verify {
                pass: p.name(),
                errors,
                ir: print(g),
            })?;
            if self.wants(p.name()) {
                let mut text = String::new();
                for (_, l) in self.log.lines.iter().filter(|(n, _)| *n == p.name()) {
                    text.push_str(&format!("; {l}\n"));
                }
                text.push_str(&print(g));
                dump(p.name(), &text);
            }
        }
        Ok(())
    }
}
