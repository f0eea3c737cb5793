"""The processes that only plan a search (spec check, `wfsearch run`'s driver) leave torch unloaded where
there can be no GPU, and ask timm's model names from a per-version list instead of importing timm."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wfsearch.gpu import device_nodes

REPO = Path(__file__).resolve().parents[1]
NO_GPU_NODE = sys.platform.startswith("linux") and not device_nodes()


def _python(code: str, cache: Path) -> dict:
    """Run ``code`` (which sets ``out``) in a fresh interpreter with its own cache folder; ``out`` and
    whether torch and timm were imported."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    wrapped = f"import sys, json\n{code}\nprint(json.dumps({{'out': out, 'torch': 'torch' in sys.modules, " \
              f"'timm': 'timm' in sys.modules}}))"
    res = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, cwd=REPO, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # fresh interpreters importing timm
def test_timm_names_are_cached_per_version_and_agree_with_timm(tmp_path: Path) -> None:
    import timm

    from wfsearch.space.timm_names import cache_path, is_timm_model, timm_model_names

    first = _python("from wfsearch.space.timm_names import timm_model_names, cache_path\n"
                    "out = [len(timm_model_names()), str(cache_path())]", tmp_path)
    assert first["timm"]  # nothing cached yet: timm answered, and its list was written
    listed = Path(first["out"][1]).read_text().split()
    assert set(timm.list_models()) <= set(listed) and "weightformer_tiny" in listed
    assert first["out"][0] == len(listed)
    code = ("from wfsearch.space.timm_names import is_timm_model\n"
            "out = [is_timm_model(n) for n in ('deit_tiny_patch16_224', 'deit_tiny_patch16_224.fb_in1k', "
            "'weightformer_small', 'deit_tiny_patch16_2244', 'resnet50.nope.x')]")
    second = _python(code, tmp_path)
    assert not second["timm"] and not second["torch"]  # answered from the list
    assert second["out"] == [True, True, True, False, True]
    # in a process that has timm, timm's registry answers, with the same result
    assert [is_timm_model(n) for n in ("deit_tiny_patch16_224.fb_in1k", "deit_tiny_patch16_2244")] == [True, False]
    assert "weightformer_tiny" in timm_model_names() and cache_path().name.startswith(f"timm-{timm.__version__}")


@pytest.mark.slow
def test_a_damaged_or_unwritable_name_cache_falls_back_to_timm(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"  # the cache folder cannot be made under a file (even by root)
    blocked.write_text("")
    res = _python("from wfsearch.space.timm_names import is_timm_model\nout = is_timm_model('vit_base_patch16_224')",
                  blocked)
    assert res["out"] is True and res["timm"]
    damaged = tmp_path / "damaged"
    code = "from wfsearch.space.timm_names import cache_path\nout = str(cache_path())"
    path = Path(_python(code, damaged)["out"])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00garbage")
    res = _python("from wfsearch.space.timm_names import is_timm_model\nout = is_timm_model('vit_base_patch16_224')",
                  damaged)
    assert res["out"] is True and res["timm"]


def test_an_unknown_reference_model_is_still_one_line_with_a_suggestion(tmp_path: Path) -> None:
    from wfsearch.space import load_spec
    from wfsearch.errors import UserError

    with pytest.raises(UserError, match=r"throughput\.reference.*not a timm model.*deit_tiny_patch16_224"):
        load_spec(REPO / "spaces" / "smoke.yaml", ["throughput.reference=deit_tiny_patch16_2244"])


@pytest.mark.skipif(not NO_GPU_NODE, reason="a GPU device node is present: torch is asked, as it should be")
@pytest.mark.slow
def test_the_run_driver_plans_without_torch_where_there_is_no_gpu(tmp_path: Path) -> None:
    # the spec's checks (memory, reference model) and the study's hardware record, as `wfsearch run` does them
    code = ("from wfsearch.space import load_spec\nfrom wfsearch.search.engine import hardware_info\n"
            "from wfsearch.gpu import gpu_count\nfrom importlib.metadata import version\n"
            "load_spec('spaces/predictors.yaml', [])\nh = hardware_info()\n"
            "out = [gpu_count(), h['cuda'], h['torch'] == version('torch')]")
    _python("from wfsearch.space.timm_names import timm_model_names\nout = len(timm_model_names())", tmp_path)
    res = _python(code, tmp_path)
    assert res["out"] == [0, False, True]
    assert not res["torch"] and not res["timm"]
    import torch

    assert torch.cuda.device_count() == 0  # what torch itself says here
