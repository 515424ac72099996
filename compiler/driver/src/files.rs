//! Files the CLI writes: what may be replaced, atomic writes, and output file names.
//!
//! secc only ever replaces a regular file: a symlink, directory, FIFO, socket or device at the
//! target path is refused with or without `--force` (as root, `-o /dev/null --force` once
//! replaced the device node). Types are read with `symlink_metadata`, which neither follows
//! links nor opens the path, so a FIFO cannot block.
use anyhow::{bail, Context, Result};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether `path` exists; an error if it exists and is anything but a regular file.
pub fn check_replaceable(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(true),
        Ok(m) => bail!(
            "refusing to replace {}: it is {}; secc only replaces regular files (--force does \
             not change this)",
            path.display(),
            secc_onnx::file_kind(&m.file_type())
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("checking {}", path.display())),
    }
}

/// True if the file starts with the artifact magic (an earlier secc output). Call only on a
/// regular file (see [`check_replaceable`]): opening a FIFO would block.
pub fn is_artifact(p: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == secc_artifact::MAGIC
}

/// Writes through a new temporary file in the same folder and renames it into place, so a
/// failure never leaves a half-written file where the user expects a good one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = path.file_name().and_then(|s| s.to_str()).unwrap_or("out");
    let (tmp, mut f) = (0..100)
        .find_map(|i| {
            let tmp = dir.join(format!(".{base}.tmp{}-{i}", std::process::id()));
            // create_new: never write through a file or link that is already there
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                r => Some(r.map(|f| (tmp, f))),
            }
        })
        .unwrap_or_else(|| Err(std::io::ErrorKind::AlreadyExists.into()))
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let r = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))
        // the path may have changed since it was first checked
        .and_then(|()| check_replaceable(path).map(|_| ()))
        .and_then(|()| {
            std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
        });
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// The file an output named `name` is written to in `dir`: `<escaped name>.npy`, where every
/// byte outside `[A-Za-z0-9._-]` is percent-encoded (`a/b` -> `a%2Fb`, `a:b` -> `a%3Ab`,
/// `%` -> `%25`). The escaping is reversible, so distinct names never share a file.
pub fn output_file(dir: &Path, name: &str) -> PathBuf {
    let mut s = String::with_capacity(name.len() + 4);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    dir.join(s + ".npy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_escape_reversibly() {
        let f = |n| output_file(Path::new(""), n).display().to_string();
        assert_eq!(f("a/b"), "a%2Fb.npy");
        assert_eq!(f("a:b"), "a%3Ab.npy");
        assert_eq!(f("a_b"), "a_b.npy");
        assert_eq!(f("a%2Fb"), "a%252Fb.npy");
        assert_eq!(f(".."), "...npy");
        assert_eq!(f("é"), "%C3%A9.npy");
    }
}
