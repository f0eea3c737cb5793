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


# --------------------------------------------------------------------------- the docs' `wfsearch` commands
SHELL_DOCS = [*DOCS, ROOT / "spaces" / "README.md"]
# Commands that cannot run offline in seconds, with why. Every other `wfsearch` command of the docs runs (a
# new one included), in a folder holding `spaces/`, `benchmarks/` and the studies the docs name.
NOT_RUN = {
    r"pip install": "creates a virtual environment and installs the package before running the quick start",
    r"^wfsearch run ": "a search trains proxy networks for minutes (the quick start about 5)",
    r"^wfsearch erf .*--trained": "trains the proxy networks before measuring their ERFs (minutes)",
    r"^wfsearch erf .*--imagefolder ~/": "needs ImageNet's validation images on disk",
    r"^wfsearch erf .*--checkpoint": "needs a checkpoint that `wfsearch train` wrote (days on ImageNet)",
    r"^wfsearch dashboard ": "serves optuna-dashboard until stopped",
    r"^wfsearch train .*--data /data/": "trains on ImageNet (needs the data, and days)",
    r"^wfsearch evaluate ": "trains one proxy network and measures it (a minute or more)",
    r"^wfsearch proxy-check ": "trains 8 architectures x 2 seeds (many minutes)",
    r"^(docker|torchrun) ": "needs Docker or several processes training on ImageNet",
}
# what makes a command that runs take seconds: appended, so the options it shows are still parsed and used
FAST = {
    r"^wfsearch bench ": "--res 64 --batch 1 --repeats 1 --iters 1 --warmup 0",
    r"^wfsearch report ": "--no-scaling",
}


def shell_commands() -> list[tuple[str, int, str]]:
    """Every command line of the docs' ```bash blocks that runs wfsearch: (file, line, command without
    its trailing comment; continuation lines joined)."""
    out = []
    for path in SHELL_DOCS:
        text = path.read_text()
        for m in re.finditer(r"```bash\n(.*?)```", text, re.S):
            first = text[:m.start()].count("\n") + 2
            for i, line in enumerate(re.sub(r"\\\n\s*", " ", m.group(1)).splitlines()):
                cmd = re.sub(r"\s+#\s.*$", "", line).strip()
                if re.search(r"(^|[\s/])wfsearch\s", cmd) or "-m wfsearch " in cmd:
                    out.append((str(path.relative_to(ROOT)), first + i, cmd))
    return out


def help_examples() -> list[tuple[str, int, str]]:
    """The `examples:` lines of every subcommand's --help (they are docs too)."""
    from wfsearch.cli import build_parser

    out = []
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, p in sub.choices.items():
        for i, line in enumerate((p.epilog or "").replace("\\\n", " ").splitlines()):
            cmd = re.sub(r"\s+#\s.*$", "", line).strip()
            if cmd.startswith(("wfsearch ", "torchrun ")):
                out.append((f"wfsearch {name} --help", i, cmd))
    return out


def not_run_reason(cmd: str) -> str | None:
    return next((why for pattern, why in NOT_RUN.items() if re.search(pattern, cmd)), None)


def wfsearch_argvs(cmd: str) -> list[list[str]]:
    """The arguments after `wfsearch` (or `-m wfsearch`) of each command joined by `&&` (redirections dropped)."""
    import shlex

    out = []
    for part in cmd.split(" && "):
        words = shlex.split(part.split(" > ")[0].split(" | ")[0])
        for i, w in enumerate(words):
            if (w == "wfsearch" or w.endswith("/wfsearch")) and (i == 0 or words[i - 1] == "-m"):
                out.append(words[i + 1:])
                break
    return out


RUN = [c for c in shell_commands() if not_run_reason(c[2]) is None]


def test_the_docs_commands_are_found_and_sorted_into_run_and_not_run():
    cmds = [c for _, _, c in shell_commands()]
    assert any(c.startswith("wfsearch simulate ") for c in cmds) and any(c.startswith("wfsearch run ") for c in cmds)
    assert len(RUN) >= 12  # validate, sample, schema, simulate, show, report, analyze, export, bench ...
    for pattern in NOT_RUN:  # a pattern matching nothing is a stale exception
        assert any(re.search(pattern, c) for c in cmds), f"NOT_RUN pattern {pattern!r} matches no command"


@pytest.mark.parametrize("where,line,cmd", shell_commands() + help_examples(),
                         ids=lambda v: str(v) if isinstance(v, int) else None)
def test_every_documented_command_parses_and_names_real_files(where, line, cmd):
    """What is not run is still checked: its options exist, and the files it names are the ones
    `export` and `train` write (recipes/trial-N.yaml, last.pth / best.pth)."""
    from wfsearch.cli import build_parser

    for argv in wfsearch_argvs(cmd):
        try:
            build_parser().parse_args(argv)
        except SystemExit as e:
            pytest.fail(f"{where}:{line}: {cmd!r} does not parse (exit {e.code})")
    for recipe in re.findall(r"recipes/(\S+\.ya?ml)", cmd):
        assert re.fullmatch(r"trial-\d+(\.timm)?\.yaml", recipe), f"{where}:{line}: export writes trial-N.yaml, not {recipe}"
    for ckpt in re.findall(r"--checkpoint\s+(\S+)", cmd):
        assert Path(ckpt).name in ("last.pth", "best.pth"), f"{where}:{line}: train writes last.pth/best.pth, not {ckpt}"


def _explore_study(folder: Path) -> None:
    """An unbiased sample of explore.yaml's knobs that matter to the docs' analyze examples."""
    import numpy as np

    from test_analyze import write_study

    space = {"fc1_predictor": ["linear", "bilateral"], "dwconv_predictor": ["gap", "adaptive"], "fc1_pool": [1, 2]}
    rng = np.random.default_rng(0)
    cells = [dict(zip(space, c)) for c in __import__("itertools").product(*space.values())] * 4
    runs = [(k, 0.5 + 0.05 * (k["fc1_predictor"] == "bilateral") + rng.normal(0, 0.02),
             1000.0 / k["fc1_pool"] * float(np.exp(rng.normal(0, 0.05)))) for k in cells]
    write_study(folder, runs, space=space)


@pytest.fixture(scope="module")
def docs_workspace(tmp_path_factory) -> Path:
    """A folder laid out as the docs assume: the repository's spaces/ and benchmarks/, and studies named
    as the docs name them (a search replayed on the tabulated space, trained fully so that trial 17 exists;
    an unbiased sample for analyze)."""
    import shutil

    ws = tmp_path_factory.mktemp("docs")
    for name in ("spaces", "benchmarks"):
        (ws / name).symlink_to(ROOT / name)
    bindir = ws / ".bin"
    bindir.mkdir()
    shim = bindir / "wfsearch"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m wfsearch \"$@\"\n")
    shim.chmod(0o755)
    done = subprocess.run([str(shim), "simulate", "benchmarks/tables/predictors-table.yaml", "--table",
                           "benchmarks/tables/predictors", "--trials", "40", "--set", "study.scheduler.type=none",
                           "-o", "studies/predictors"], cwd=ws, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shutil.copytree(ws / "studies" / "predictors", ws / "studies" / "predictors-table-simulated")
    _explore_study(ws / "studies" / "explore")
    return ws


@pytest.mark.parametrize("where,line,cmd", RUN, ids=lambda v: str(v) if isinstance(v, int) else None)
def test_documented_command_runs(where, line, cmd, docs_workspace, tmp_path):
    """Each command as written (plus `FAST`'s settings), in a copy of the workspace, exits 0."""
    import os
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(docs_workspace, ws, symlinks=True)
    extra = next((args for pattern, args in FAST.items() if re.search(pattern, cmd)), "")
    shell = re.sub(r"^(wfsearch \S+.*?)(\s*>.*)?$", lambda m: f"{m.group(1)} {extra}{m.group(2) or ''}", cmd) if extra else cmd
    env = {**os.environ, "PATH": f"{ws / '.bin'}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(shell, shell=True, cwd=ws, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{where}:{line}: {shell}\n{done.stdout[-1500:]}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr, f"{where}:{line}: {shell}\n{done.stderr[-2000:]}"


def test_every_help_renders_as_written():
    """argparse %-formats help strings but prints descriptions and epilogs as they are: a `%%` there shows."""
    from wfsearch.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "%%" not in text, f"wfsearch {name} --help shows '%%'"


# outputs the docs name that a benchmark has not written yet, with why; an entry whose file exists is stale
PENDING: dict[str, str] = {}  # a file the docs name before the benchmark that writes it has run: why


def test_relative_links_and_named_files_in_the_docs_lead_somewhere():
    for named in PENDING:
        assert not (ROOT / named).exists(), f"{named} exists now: drop it from PENDING"
    for path in SHELL_DOCS:
        text = path.read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" not in target:
                assert (path.parent / target).exists(), f"{path.relative_to(ROOT)}: link to missing {target}"
        for named in re.findall(r"`((?:benchmarks|docs|spaces|tests|wfsearch)/[\w./-]+\.(?:md|py|yaml|txt|json))`", text):
            assert named in PENDING or (ROOT / named).exists(), f"{path.relative_to(ROOT)}: names missing file {named}"


def test_the_quick_starts_duration_is_stated_once_alike():
    readme = (ROOT / "README.md").read_text()
    spaces = (ROOT / "spaces" / "README.md").read_text()
    seconds = re.search(r"the search\s+(\d+) s\b", readme)
    row = re.search(r"\| `predictors\.yaml` \|[^|]*\| ~?(\d+) min", spaces)
    assert seconds and row and round(int(seconds.group(1)) / 60) == int(row.group(1)), (
        seconds and seconds.group(0), row and row.group(0))
