"""The README's and docs' Python examples run as written, in a fresh interpreter (so that what a user
pastes first works: `import timm, wfsearch` must register the models)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks() -> list[tuple[str, int, str]]:
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in re.finditer(r"```python\n(.*?)```", text, re.S):
            out.append((path.name, text[:m.start()].count("\n") + 1, m.group(1)))
    return out


@pytest.mark.parametrize("name,line,code", python_blocks(), ids=lambda v: str(v) if isinstance(v, int) else None)
def test_python_block_runs(name, line, code, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name}:{line}: {done.stderr[-2000:]}"


def test_import_wfsearch_registers_models_without_loading_torch():
    code = ("import sys, wfsearch; assert 'torch' not in sys.modules and 'timm' not in sys.modules\n"
            "import timm; assert 'weightformer_test' in timm.list_models('weightformer*')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
