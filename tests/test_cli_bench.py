"""`wfsearch bench` and the CLI's handling of bad input."""
from wfsearch.cli import main


def test_bench_prints_interleaved_table(capsys):
    rc = main(["bench", "weightformer_test", "resnet18", "--res", "32", "48", "--batch", "2",
               "--repeats", "2", "--iters", "1", "--warmup", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = [line.split() for line in out.splitlines() if line.startswith(("weightformer_test", "resnet18"))]
    assert [(r[0], r[1]) for r in rows] == [("weightformer_test", "32"), ("resnet18", "32"),
                                           ("weightformer_test", "48"), ("resnet18", "48")]
    assert all(float(r[4]) > 0 for r in rows)
    assert rows[0][-1] == "1.00x" and rows[2][-1] == "1.00x"  # ratios are to the first model
    assert "device=cpu" in out


def test_bench_unknown_model_is_one_line(capsys):
    rc = main(["bench", "weightformer_huge", "--res", "32"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "weightformer_huge" in err and "Traceback" not in err


def test_bench_bad_flags_are_one_line(capsys):
    assert main(["bench", "weightformer_test", "--batch", "0"]) == 2
    assert "--batch=0" in capsys.readouterr().err
    assert main(["bench", "weightformer_test", "--dtype", "float8"]) == 2
    assert "dtype" in capsys.readouterr().err
