"""The CLI's help for a mistake: did-you-mean, global flags anywhere, examples in every help, sample/validate
judging the spec's constraints, and trials named by number in the log."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from wfsearch.cli import build_parser, main
from wfsearch.errors import UserError
from wfsearch.space import parse_constraint
from wfsearch.suggest import close_matches, did_you_mean

SMOKE = str(Path(__file__).resolve().parents[1] / "spaces" / "smoke.yaml")
FC1 = ["none", "gap", "linear", "nonlinear", "deep", "bilateral"]


@pytest.mark.parametrize("word, names, best", [
    ("bilinear", FC1, ["bilateral"]),  # a shared start beats a shared substring
    ("nonlinar", FC1, ["nonlinear"]),
    ("acc", ["accuracy", "throughput", "params", "macs"], ["accuracy"]),  # an abbreviation
    ("shwo", ["run", "show", "schema", "sample"], ["show"]),
    ("gaussian", FC1, []),
])
def test_close_matches(word, names, best):
    assert close_matches(word, names) == best


def test_a_case_only_difference_says_case_matters():
    assert did_you_mean("NSGA2", ["auto", "nsga2", "tpe"]) == "; did you mean 'nsga2'? (names are case-sensitive)"


def test_misspelled_subcommand_gets_a_suggestion(capsys):
    assert main(["shwo", "studies/predictors"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'shwo'; did you mean 'show'?" in err and "Traceback" not in err


def test_global_flags_work_before_and_after_the_subcommand():
    parse = build_parser().parse_args
    assert parse(["validate", "x.yaml"]).debug is False
    for argv in (["--debug", "-v", "validate", "x.yaml"], ["validate", "x.yaml", "--debug", "-v"],
                 ["validate", "--debug", "x.yaml", "--verbose"]):
        args = parse(argv)
        assert args.debug and args.verbose and args.spec == "x.yaml", argv


def test_debug_after_the_subcommand_shows_the_traceback(capsys):
    assert main(["validate", SMOKE, "--set", "study.sampler=NSGA2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'nsga2'? (names are case-sensitive)" in err
    with pytest.raises(UserError):
        main(["validate", SMOKE, "--set", "study.sampler=NSGA2", "--debug"])


def test_unknown_predictor_suggests_the_nearest_by_prefix(capsys):
    assert main(["validate", SMOKE, "--set", "space={fc1_predictor: {choice: [bilinear, none]}}"]) == 2
    err = capsys.readouterr().err
    assert "'bilinear': must be one of" in err and err.rstrip().endswith("did you mean 'bilateral'?")


def test_constraint_with_units_shows_the_number_form():
    with pytest.raises(ValueError, match=r"units such as 'MB' are not accepted; .*'params <= 1.5e6' "
                                         r"\(or params <= 1.5M\)"):
        parse_constraint("params <= 1.5 MB")
    assert parse_constraint("params <= 1.5M").value == 1.5e6


def test_every_subcommand_has_examples_and_a_consistent_positional():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "\nexamples:\n  " in text, name
        assert "studies/quick" not in text, name
        positional = [a.metavar for a in p._actions if not a.option_strings]
        assert all(m is None or m.isupper() for m in positional), (name, positional)
    assert "SPEC" in sub.choices["run"].format_usage()


def test_sample_flags_constraint_violations_and_validate_counts_them(capsys):
    bound = ["--set", "study.constraints=['params <= 2e4']"]  # the smoke space's nets are larger
    assert main(["sample", SMOKE, "-n", "3", *bound]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 samples violate them" in out
    entries = yaml.safe_load(out)
    assert all(e["violates"][0].startswith("params=") and "violates params <= 20000" in e["violates"][0]
               for e in entries)
    assert main(["sample", SMOKE, "-n", "3"]) == 0
    assert all("violates" not in e for e in yaml.safe_load(capsys.readouterr().out))

    assert main(["validate", SMOKE, "--samples", "8", *bound]) == 0
    out = capsys.readouterr().out
    assert "0 of 8 random samples satisfy params <= 20000: about 0 of the" in out
    assert "auto on auto" not in out and " on cpu" in out


def test_scheduler_logs_trial_numbers(caplog):
    from wfsearch.search.scheduler import ParetoSuccessiveHalving

    s = ParetoSuccessiveHalving([1, 3], ["accuracy", "throughput"], ["maximize", "maximize"], 2,
                                trial_number={"ray-a": 0, "ray-b": 1}.get)
    with caplog.at_level(logging.INFO, logger="wfsearch.search.rungs"):  # the rung decision logs
        s.decide("ray-a", 1, [0.5, 100])
        s.decide("ray-b", 1, [0.4, 90])
    assert "stopping trial 1 (" in caplog.text and "ray-b" not in caplog.text
