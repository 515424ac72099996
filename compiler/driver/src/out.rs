//! Printing that never panics. `println!` panics when stdout is a closed pipe (`secc inspect
//! m.bin | head -c 10`) and `eprintln!` when stderr is; these macros turn a closed stdout into
//! [`StdoutClosed`], which `main` ends on quietly with status 0 (as ripgrep does), and drop
//! what cannot be written to stderr.

/// Stdout was closed by its reader: not an error the user needs to see.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// An error whose details were already printed as the command's JSON report: `main`
/// prints it to stderr only.
#[derive(Debug)]
pub struct Reported(pub String);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reported {}

/// Maps a failed write to stdout: a broken pipe becomes [`StdoutClosed`].
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("writing to stdout")
    }
}

/// `println!` that returns an error (via `?`) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*).map_err($crate::out::stdout_error)?
    }};
}

/// `eprintln!` that ignores a closed stderr instead of panicking.
macro_rules! note {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

pub(crate) use {note, out};
