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
