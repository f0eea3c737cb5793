"""Hostile specs: each one is refused by `wfsearch validate` in under 5 s, with one line and exit 2,
never a traceback, a hang or unbounded memory."""
from __future__ import annotations

import resource
from pathlib import Path

import pytest

from wfsearch.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOKE = (REPO / "spaces" / "smoke.yaml").read_text()


def refused(args: list, capsys) -> str:  # how fast: benchmarks/timings.py (pytest-timeout stops a hang)
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("wfsearch: error: "), (rc, err[-2000:])
    assert "Traceback" not in err and "RecursionError" not in err
    return lines[0]


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nstudy: {{name: bomb}}\nbase: {{x: *a{levels}}}\n"


def merge_bomb(levels: int = 24) -> str:
    lines = ["k0: &k0 {x0: 1, y0: 2}"]
    for i in range(1, levels + 1):
        lines.append(f"k{i}: &k{i} {{a{i}: *k{i - 1}, b{i}: *k{i - 1}, <<: *k{i - 1}}}")
    return "\n".join(lines) + f"\nbase: *k{levels}\n"


@pytest.mark.timeout(60)
def test_alias_bombs_are_refused_with_bounded_memory(tmp_path, capsys):
    main(["validate", str(tmp_path / "missing.yaml")])  # the first call imports the CLI: not timed
    capsys.readouterr()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i, text in enumerate([alias_bomb(), alias_bomb(levels=30, width=2), merge_bomb()]):
        line = refused(["validate", write(tmp_path, text, f"bomb{i}.yaml")], capsys)
        assert "aliases" in line, line
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"peak memory grew by {grown_mb:.0f} MB"


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting_is_one_line(tmp_path, capsys, opener, closer):
    text = SMOKE + "\nextra: " + opener * 600 + "1" + closer * 600 + "\n"
    assert "nesting deeper than" in refused(["validate", write(tmp_path, text)], capsys)


def test_a_long_extends_chain_is_one_line(tmp_path, capsys):
    (tmp_path / "f0.yaml").write_text(SMOKE)
    for i in range(1, 1200):
        (tmp_path / f"f{i}.yaml").write_text(f"extends: f{i - 1}.yaml\n")
    assert "extends: a chain of more than" in refused(["validate", tmp_path / "f1199.yaml"], capsys)


def test_extends_to_a_directory_names_it(tmp_path, capsys):
    (tmp_path / "parent").mkdir()
    line = refused(["validate", write(tmp_path, "extends: parent\n" + SMOKE)], capsys)
    assert "'parent': is a directory" in line, line


def test_huge_choice_lists_and_files(tmp_path, capsys):
    big = "[" + ", ".join(str(i) for i in range(2_000_000)) + "]"
    line = refused(["validate", write(tmp_path, SMOKE + f"\nspace2: {big}\n", "huge.yaml")], capsys)
    assert "larger than" in line
    long = "[" + ", ".join(str(i) for i in range(12_000)) + "]"
    text = SMOKE.replace("rank_ratio: {choice: [2, 4]", "rank_ratio: {choice: " + long)
    assert "a list of more than 10,000 values" in refused(["validate", write(tmp_path, text, "long.yaml")], capsys)


@pytest.mark.parametrize("override,expect", [
    ("base.embed_dim=1000000000", "must be an integer in [1, 65536]"),
    ("base.embed_dim=60000", "base.embed_dim: 60000: training the smallest proxy network of the space"),
    ("study.storage=notadb://whatever", "unknown database 'notadb'"),
    ("study.storage=postgresql+nosuchdriver://u@h/db", "unknown database"),
    ("proxy.epochs=[1, 1000000000000]", "less than or equal to 100000"),
    ("study.trials=true", "valid integer"),
    ("study.trials=2.5", "valid integer"),
])
def test_absurd_values_fail_validate(override, expect, capsys):
    line = refused(["validate", REPO / "spaces" / "smoke.yaml", "--set", override], capsys)
    assert expect in line, line


def test_validate_reports_a_missing_data_root(capsys):
    rc = main(["validate", str(REPO / "spaces" / "smoke.yaml"), "--samples", "2",
               "--set", "proxy.dataset={name: imagefolder, root: /nonexistent, num_classes: 2}"])
    out = capsys.readouterr().out
    assert rc == 0 and "warning: proxy.dataset.root: /nonexistent: no train/ folder there" in out, out
