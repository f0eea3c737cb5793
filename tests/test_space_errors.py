"""Broken specs, each through the CLI: exit status 2, one line on stderr naming the file and the key path."""
from __future__ import annotations

import pytest

from wfsearch.cli import main

OK = "base: {patch_size: 4, embed_dim: 32, depth: 3}\nproxy: {epochs: [1, 2]}\n"  # a valid minimal spec

# id, {file: text} (the spec is spec.yaml), extra CLI args, substrings expected after "wfsearch: error: "
CASES = [
    # --- the file and its YAML
    ("empty-file", {"spec.yaml": ""}, [], ["spec.yaml: (top level): None:", "empty"]),
    ("only-comments", {"spec.yaml": "# nothing here\n"}, [], ["spec.yaml: (top level)", "empty"]),
    ("non-mapping-list", {"spec.yaml": "- study\n- proxy\n"}, [], ["spec.yaml: (top level): ['study', 'proxy']", "mapping"]),
    ("non-mapping-scalar", {"spec.yaml": "hello\n"}, [], ["spec.yaml: (top level): 'hello'", "mapping"]),
    ("yaml-syntax", {"spec.yaml": "study: {trials: 3\n"}, [], ["spec.yaml: line 2, column 1: invalid YAML"]),
    ("yaml-indentation", {"spec.yaml": "study:\n  trials: 3\n   seed: 1\n"}, [], ["spec.yaml: line 3", "invalid YAML"]),
    ("python-object-tag", {"spec.yaml": "study: !!python/object/apply:os.system [ls]\n"}, [],
     ["spec.yaml: study (line 1): '!!python/object/apply:os.system'", "not allowed"]),
    ("custom-tag", {"spec.yaml": OK + "references: !include refs.yaml\n"}, [], ["spec.yaml: references", "'!include'"]),
    ("duplicate-key", {"spec.yaml": "study:\n  trials: 3\n  trials: 4\n"}, [],
     ["spec.yaml: study.trials (line 3): 'trials': duplicate key (first set on line 2)"]),
    ("duplicate-section", {"spec.yaml": "study: {}\nproxy: {}\nstudy: {}\n"}, [], ["spec.yaml: study (line 3)", "duplicate"]),
    ("non-string-key", {"spec.yaml": "base: {1: 2}\n"}, [], ["spec.yaml: base (line 1): '1'", "plain names"]),
    ("missing-file", {}, [], ["spec.yaml: (file):", "no such file"]),
    ("a-directory", {"spec.yaml": None}, [], ["spec.yaml: (file):", "is a directory"]),
    ("not-utf8", {"spec.yaml": b"\xff\xfe\x00 study"}, [], ["spec.yaml: (file):", "not UTF-8"]),
    ("two-documents", {"spec.yaml": OK + "---\n" + OK}, [], ["spec.yaml: line 3", "single YAML document"]),
    ("recursive-alias", {"spec.yaml": "base: &a {patch_size: *a}\n"}, [], ["spec.yaml: base.patch_size (line 1)", "recursive"]),
    ("nan-value", {"spec.yaml": OK + "resources: {cpus_per_trial: .nan}\n"}, [],
     ["resources.cpus_per_trial: nan:", "finite"]),
    # --- unknown keys and wrong types
    ("unknown-section", {"spec.yaml": OK + "stduy: {trials: 3}\n"}, [], ["spec.yaml: stduy: 'stduy': unknown key; did you mean 'study'?"]),
    ("unknown-key", {"spec.yaml": OK + "study: {sampelr: tpe}\n"}, [], ["spec.yaml: study.sampelr:", "did you mean 'sampler'?"]),
    ("wrong-type", {"spec.yaml": OK + "study: {trials: many}\n"}, [], ["spec.yaml: study.trials: 'many':", "integer"]),
    ("section-not-mapping", {"spec.yaml": OK + "resources: [1, 2]\n"}, [], ["spec.yaml: resources: [1, 2]:", "mapping"]),
    ("trials-zero", {"spec.yaml": OK + "study: {trials: 0}\n"}, [], ["spec.yaml: study.trials: 0:", "greater than or equal to 1"]),
    ("unknown-sampler", {"spec.yaml": OK + "study: {sampler: nsgaii}\n"}, [], ["study.sampler: 'nsgaii':", "did you mean 'nsga2'?"]),
    ("bad-study-name", {"spec.yaml": OK + "study: {name: 'my study'}\n"}, [], ["study.name: 'my study':", "letters, digits"]),
    ("unknown-objective", {"spec.yaml": OK + "study: {objectives: [acuracy]}\n"}, [],
     ["study.objectives[0].name: 'acuracy':", "did you mean 'accuracy'?"]),
    ("duplicate-objective", {"spec.yaml": OK + "study: {objectives: [accuracy, accuracy]}\n"}, [], ["study.objectives:", "twice"]),
    ("highres-objective-without-highres", {"spec.yaml": OK + "study: {objectives: [accuracy, latency_highres]}\n"}, [],
     ["study.objectives[1].name: 'latency_highres':", "throughput.highres"]),
    ("constraint-operator", {"spec.yaml": OK + "study: {constraints: ['params == 3e6']}\n"}, [],
     ["study.constraints[0]: 'params == 3e6':", "use <=, <, >= or >"]),
    ("constraint-metric", {"spec.yaml": OK + "study: {constraints: ['flops <= 3e9']}\n"}, [],
     ["study.constraints[0]: 'flops <= 3e9':", "unknown metric 'flops'"]),
    ("scheduler-type", {"spec.yaml": OK + "study: {scheduler: {type: asha}}\n"}, [], ["study.scheduler.type: 'asha':", "mo_asha"]),
    ("reduction-factor", {"spec.yaml": OK + "study: {scheduler: {reduction_factor: 1}}\n"}, [],
     ["study.scheduler.reduction_factor: 1:", "greater than or equal to 2"]),
    ("cpus-zero", {"spec.yaml": OK + "resources: {cpus_per_trial: 0}\n"}, [], ["resources.cpus_per_trial: 0:", "greater than 0"]),
    ("fractional-gpus-above-one", {"spec.yaml": OK + "resources: {gpus_per_trial: 1.5}\n"}, [],
     ["resources.gpus_per_trial: 1.5:", "whole number"]),
    # --- proxy and throughput
    ("epochs-decreasing", {"spec.yaml": "base: {patch_size: 4}\nproxy: {epochs: [3, 1]}\n"}, [],
     ["spec.yaml: proxy.epochs: [3, 1]:", "strictly increasing"]),
    ("epochs-zero", {"spec.yaml": "base: {patch_size: 4}\nproxy: {epochs: 0}\n"}, [], ["proxy.epochs[0]: 0:"]),
    ("warmup-too-long", {"spec.yaml": "base: {patch_size: 4}\nproxy: {epochs: 2, warmup_epochs: 2}\n"}, [],
     ["proxy.warmup_epochs: 2.0:", "below the budget"]),
    ("unknown-dataset", {"spec.yaml": OK.replace("{epochs", "{dataset: {name: imagenet}, epochs")}, [],
     ["proxy.dataset.name: 'imagenet':", "did you mean 'imagefolder'?"]),
    ("imagefolder-without-classes", {"spec.yaml": OK.replace("{epochs", "{dataset: {name: imagefolder, root: x}, epochs")},
     [], ["proxy.dataset.num_classes: (missing):", "imagefolder needs num_classes"]),
    ("cifar10-bad-class", {"spec.yaml": OK.replace("{epochs", "{dataset: {name: cifar10, classes: [cat, dgo]}, epochs")},
     [], ["proxy.dataset.classes[1]: 'dgo':", "did you mean 'dog'?"]),
    ("synthetic-too-many-classes", {"spec.yaml": OK.replace("{epochs", "{dataset: {num_classes: 40}, epochs")}, [],
     ["proxy.dataset.num_classes: 40:", "2..16"]),
    ("unknown-dataset-option", {"spec.yaml": OK.replace("{epochs", "{dataset: {train_szie: 10}, epochs")}, [],
     ["proxy.dataset.train_szie:", "did you mean 'train_size'?"]),
    ("throughput-dtype", {"spec.yaml": OK + "throughput: {dtype: fp16}\n"}, [], ["throughput.dtype: 'fp16':", "float16"]),
    ("throughput-device", {"spec.yaml": OK + "throughput: {device: gpu}\n"}, [], ["throughput.device: 'gpu':", "cuda"]),
    ("throughput-compile", {"spec.yaml": OK + "throughput: {compile: fast}\n"}, [],
     ["throughput.compile: 'fast':", "max-autotune"]),
    ("throughput-resolution-vs-patch", {"spec.yaml": "base: {patch_size: 5, embed_dim: 32, depth: 3}\nproxy: {img_size: 40}\n"},
     [], ["throughput.img_size: 224:", "patch_size=5"]),
    ("unknown-reference-model", {"spec.yaml": OK + "throughput: {reference: deit_tinny_patch16_224}\n"}, [],
     ["throughput.reference: 'deit_tinny_patch16_224':", "did you mean 'deit_tiny_patch16_224'"]),
    # --- base and space
    ("unknown-base-field", {"spec.yaml": "base: {patch_size: 4, embed_dimm: 64}\n"}, [],
     ["spec.yaml: base.embed_dimm: 'embed_dimm': not an ArchConfig field; did you mean 'embed_dim'?"]),
    ("unknown-space-field", {"spec.yaml": OK + "space: {rank: [2, 4]}\n"}, [], ["space.rank: 'rank':", "rank_ratio"]),
    ("unknown-predictor-in-base", {"spec.yaml": "base: {patch_size: 4, fc1_predictor: bilaterl}\n"}, [],
     ["base.fc1_predictor: 'bilaterl':", "did you mean 'bilateral'"]),
    ("unknown-predictor-in-space", {"spec.yaml": OK + "space: {dwconv_predictor: [none, adaptiv]}\n"}, [],
     ["space.dwconv_predictor.choice[1]: 'adaptiv':", "did you mean 'adaptive'"]),
    ("bad-placement", {"spec.yaml": "base: {patch_size: 4, dynamic_blocks: 'every:0'}\n"}, [],
     ["base.dynamic_blocks: 'every:0':", "K must be >= 1"]),
    ("bad-placement-choice", {"spec.yaml": OK + "space: {dynamic_blocks: [all, sometimes]}\n"}, [],
     ["space.dynamic_blocks.choice[1]: 'sometimes':", "every:K"]),
    ("placement-beyond-depth", {"spec.yaml": OK + "space: {dynamic_blocks: [all, [1, 9]]}\n"}, [],
     ["space.dynamic_blocks.choice[1]: [1, 9]:", "[0, 2]"]),
    ("low-above-high", {"spec.yaml": OK + "space: {rank_ratio: {int: [8, 4]}}\n"}, [],
     ["space.rank_ratio.int: [8, 4]:", "low <= high"]),
    ("range-wrong-length", {"spec.yaml": OK + "space: {drop_rate: {float: [0.0, 0.1, 0.2]}}\n"}, [], ["space.drop_rate.float:"]),
    ("knob-two-kinds", {"spec.yaml": OK + "space: {rank_ratio: {int: [2, 8], choice: [2, 4]}}\n"}, [],
     ["space.rank_ratio:", "exactly one of"]),
    ("knob-empty", {"spec.yaml": OK + "space: {rank_ratio: {}}\n"}, [], ["space.rank_ratio: {}:", "exactly one of"]),
    ("knob-empty-choice", {"spec.yaml": OK + "space: {rank_ratio: {choice: []}}\n"}, [], ["space.rank_ratio.choice: []:"]),
    ("knob-duplicate-choice", {"spec.yaml": OK + "space: {rank_ratio: [2, 4, 2]}\n"}, [], ["space.rank_ratio.choice:", "twice"]),
    ("knob-log-from-zero", {"spec.yaml": OK + "space: {drop_rate: {float: [0.0, 0.5], log: true}}\n"}, [],
     ["space.drop_rate:", "low > 0"]),
    ("knob-step-with-choice", {"spec.yaml": OK + "space: {rank_ratio: {choice: [2, 4], step: 2}}\n"}, [],
     ["space.rank_ratio:", "not to choice"]),
    ("knob-float-for-int-field", {"spec.yaml": OK + "space: {rank_ratio: {float: [2, 8]}}\n"}, [],
     ["space.rank_ratio.float[0]: 2.0:", "integer"]),
    ("range-with-invalid-values", {"spec.yaml": OK + "space: {kernel_size: {int: [3, 7]}}\n"}, [],
     ["space.kernel_size.int: [3, 7]:", "includes 4", "odd"]),
    ("space-and-base", {"spec.yaml": OK + "space: {embed_dim: [32, 64]}\n"}, [], ["space.embed_dim: [32, 64]:", "also fixed in base.embed_dim"]),
    ("num-classes-mismatch", {"spec.yaml": "base: {patch_size: 4, num_classes: 10}\n"}, [],
     ["base.num_classes: 10:", "4 classes"]),
    ("num-classes-searched", {"spec.yaml": OK + "space: {num_classes: [4, 8]}\n"}, [], ["space.num_classes:", "cannot be searched"]),
    # --- conditions
    ("when-unknown-field", {"spec.yaml": OK + "space: {rank_ratio: {choice: [2], when: {fc1_predictr: [bilateral]}}}\n"},
     [], ["space.rank_ratio.when.fc1_predictr: 'fc1_predictr':", "did you mean 'fc1_predictor'"]),
    ("when-value-not-a-choice",
     {"spec.yaml": OK + "space: {fc1_predictor: [none, bilateral], rank_ratio: {choice: [2], when: {fc1_predictor: [bilaterl]}}}\n"},
     [], ["space.rank_ratio.when.fc1_predictor[0]: 'bilaterl':", "did you mean 'bilateral'"]),
    ("when-values-never-taken",
     {"spec.yaml": OK + "space: {fc1_predictor: [none, bilateral], rank_ratio: {choice: [2], when: {fc1_predictor: [gap, deep]}}}\n"},
     [], ["space.rank_ratio.when.fc1_predictor: ['gap', 'deep']:", "never holds", "takes none of these values"]),
    ("when-never-holds", {"spec.yaml": OK.replace("depth: 3", "depth: 3, fc1_predictor: none")
                          + "space: {rank_ratio: {choice: [2, 4], when: {fc1_predictor: [bilateral]}}}\n"}, [],
     ["space.rank_ratio.when.fc1_predictor: ['bilateral']:", "never holds"]),
    ("when-on-itself", {"spec.yaml": OK + "space: {rank_ratio: {choice: [2, 4], when: {rank_ratio: [2]}}}\n"}, [],
     ["space.rank_ratio.when.rank_ratio:", "itself"]),
    ("when-circular", {"spec.yaml": OK + "space:\n  fc1_pool: {choice: [1, 2], when: {rank_ratio: [2]}}\n"
                                         "  rank_ratio: {choice: [2, 4], when: {fc1_pool: [1]}}\n"}, [],
     ["space.fc1_pool.when:", "circular condition fc1_pool -> rank_ratio -> fc1_pool"]),
    ("when-not-a-mapping", {"spec.yaml": OK + "space: {rank_ratio: {choice: [2, 4], when: fc1_predictor}}\n"}, [],
     ["space.rank_ratio.when: 'fc1_predictor':", "dictionary"]),
    # --- feasibility of the whole space
    ("no-architecture-builds", {"spec.yaml": "base: {patch_size: 4, embed_dim: 36, depth: 3}\nspace: {rank_ratio: [8, 16]}\n"},
     [], ["space.rank_ratio: [8, 16]:", "no architecture in the space can be built", "divisible by rank_ratio"]),
    ("choice-never-builds", {"spec.yaml": OK + "space: {fc1_pool: [2, 16]}\n"}, [],
     ["space.fc1_pool.choice[1]: 16:", "no architecture in the space can use it", "larger than the token grid"]),
    ("defaults-do-not-fit", {"spec.yaml": "proxy: {img_size: 32}\n"}, [],
     ["spec.yaml: base: {'img_size': 32, 'num_classes': 4}:", "dwconv_pool", "patch_size"]),
    ("grid-with-continuous-knob", {"spec.yaml": OK + "study: {sampler: grid}\nspace: {drop_rate: {float: [0, 0.1]}}\n"}, [],
     ["study.sampler: 'grid':", "space.drop_rate"]),
    # --- references
    ("reference-both-kinds", {"spec.yaml": OK + "references: [{name: x, arch: {}, model: deit_tiny_patch16_224}]\n"}, [],
     ["references[0]:", "exactly one of"]),
    ("reference-without-name", {"spec.yaml": OK + "references: [{arch: {}}]\n"}, [], ["references[0].name: (missing):"]),
    ("reference-unknown-model", {"spec.yaml": OK + "references: [{name: x, model: resnet5O}]\n"}, [],
     ["references[0].model: 'resnet5O':", "not a timm model"]),
    ("reference-unknown-field", {"spec.yaml": OK + "references: [{name: x, arch: {rank_ration: 2}}]\n"}, [],
     ["references[0].arch.rank_ration:", "did you mean 'rank_ratio'"]),
    ("reference-cannot-build", {"spec.yaml": OK + "references: [{name: x, arch: {rank_ratio: 64}}]\n"}, [],
     ["references[0].arch.rank_ratio: 64:", "divisible"]),
    ("reference-duplicate-name", {"spec.yaml": OK + "references: [{name: x, arch: {}}, {name: x, arch: {}}]\n"}, [],
     ["references[1].name: 'x':", "names must differ"]),
    # --- extends
    ("extends-missing", {"spec.yaml": "extends: nope.yaml\n" + OK}, [], ["spec.yaml: extends: 'nope.yaml': no such file"]),
    ("extends-not-a-string", {"spec.yaml": "extends: {a: 1}\n" + OK}, [], ["spec.yaml: extends: {'a': 1}:"]),
    ("extends-circular", {"spec.yaml": "extends: other.yaml\n" + OK, "other.yaml": "extends: spec.yaml\n"}, [],
     ["other.yaml: extends: 'spec.yaml': circular extends"]),
    ("error-in-parent", {"spec.yaml": "extends: parent.yaml\n" + OK, "parent.yaml": "study: {trials: -1}\n"}, [],
     ["parent.yaml: study.trials: -1:"]),
    ("syntax-error-in-parent", {"spec.yaml": "extends: parent.yaml\n" + OK, "parent.yaml": "study: [\n"}, [],
     ["parent.yaml: line 2"]),
    # --- --set
    ("set-without-equals", {"spec.yaml": OK}, ["--set", "study.trials"], ["spec.yaml: --set: 'study.trials': expected KEY.PATH=VALUE"]),
    ("set-wrong-type", {"spec.yaml": OK}, ["--set", "study.trials=abc"], ["spec.yaml (--set): study.trials: 'abc':", "integer"]),
    ("set-unknown-key", {"spec.yaml": OK}, ["--set", "proxy.epoch=3"], ["spec.yaml (--set): proxy.epoch:", "did you mean 'epochs'"]),
    ("set-inside-scalar", {"spec.yaml": OK + "study: {trials: 3}\n"}, ["--set", "study.trials.x=1"],
     ["spec.yaml (--set): study.trials.x:", "not a mapping"]),
    ("set-creates-wrong-shape", {"spec.yaml": OK}, ["--set", "study.trials.x=1"],
     ["spec.yaml (--set): study.trials: {'x': 1}:", "integer"]),
    ("set-bad-yaml", {"spec.yaml": OK}, ["--set", "space.rank_ratio=[2, 4"], ["spec.yaml (--set space.rank_ratio): line 1", "invalid YAML"]),
    ("set-bad-key", {"spec.yaml": OK}, ["--set", "study..trials=3"], ["spec.yaml: --set: 'study..trials=3': malformed key"]),
    ("set-impossible-architecture", {"spec.yaml": OK}, ["--set", "base.embed_dim=30", "--set", "space.rank_ratio=[4, 8]"],
     ["space.rank_ratio: [4, 8]:", "no architecture in the space can be built"]),
]


def test_the_table_is_large_and_varied():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("files, args, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_spec_gives_one_line_and_status_2(tmp_path, monkeypatch, capsys, files, args, expected):
    for name, text in files.items():
        if text is None:
            (tmp_path / name).mkdir()
        elif isinstance(text, bytes):
            (tmp_path / name).write_bytes(text)
        else:
            (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    rc = main(["validate", "spec.yaml", *args])
    out, err = capsys.readouterr()
    assert rc == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and out == ""
    assert lines[0].startswith("wfsearch: error: ")
    message = lines[0].removeprefix("wfsearch: error: ")
    file_named = next(iter(files), "spec.yaml")
    assert any(f in message.split(": ")[0] for f in (file_named, "other.yaml", "parent.yaml")), message
    for piece in expected:
        assert piece in message, f"{piece!r} not in {message!r}"


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "spec.yaml").write_text("study: {trials: 0}\n")
    from wfsearch.errors import UserError

    with pytest.raises(UserError, match=r"study\.trials"):
        main(["--debug", "validate", str(tmp_path / "spec.yaml")])


def test_sample_and_validate_share_the_errors(tmp_path, capsys):
    (tmp_path / "spec.yaml").write_text(OK + "space: {rank: [2]}\n")
    assert main(["sample", str(tmp_path / "spec.yaml"), "-n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "space.rank" in err
