"""The README's Python snippet runs as shown (from a folder holding the repository's
examples/, as the repository root does)."""
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_python_snippet_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    section = text.split("### Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("ray_serve", "c", "run_cpu"))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "se_block.bin").is_file()


def test_readme_rust_snippet_is_the_runtimes_doc_example():
    """The README's Rust snippet is the visible part of secc-runtime's rustdoc example,
    which `cargo test --doc` compiles and runs."""
    readme = (ROOT / "README.md").read_text().split("### Rust", 1)[1]
    snippet = re.search(r"```rust\n(.*?)```", readme, re.S).group(1).strip()
    lib = (ROOT / "runtime" / "runtime" / "src" / "lib.rs").read_text()
    doc = [line[4:] if line.startswith("//! ") else line[3:] for line in lib.splitlines() if line.startswith("//!")]
    start = doc.index("```")
    body = doc[start + 1 : doc.index("```", start + 1)]
    visible = "\n".join(line for line in body if not line.lstrip().startswith("# ")).strip()
    assert snippet == visible
