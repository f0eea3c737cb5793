"""`wfsearch bench` and the CLI's handling of bad input."""
from wfsearch.cli import main


def test_bench_prints_interleaved_table(capsys):
    rc = main(["bench", "weightformer_test", "resnet18", "--res", "32", "48", "--batch", "2",
               "--repeats", "2", "--iters", "1", "--warmup", "1", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0
    # never silent while it measures: what it does goes to stderr
    assert "# measuring 32 px: 1 warm-up batch(es) per model ..." in err and "# measuring 48 px: repeat 2/2 ..." in err
    rows = [line.split() for line in out.splitlines() if line.startswith(("weightformer_test", "resnet18"))]
    assert [(r[0], r[1]) for r in rows] == [("weightformer_test", "32"), ("resnet18", "32"),
                                           ("weightformer_test", "48"), ("resnet18", "48")]
    assert all(float(r[4]) > 0 for r in rows)
    assert rows[1][-3] == "1.00x" and rows[3][-3] == "1.00x"  # ratios are to the last model, as trial/reference
    assert float(rows[0][-3].rstrip("x")) == __import__("pytest").approx(float(rows[0][4]) / float(rows[1][4]), rel=0.5)
    header = out.splitlines()[0]
    for what in ("cpu:", "thread", "clock:", "dtype float32", "batch 2", "resolution 32 48", "inference"):
        assert what in header
    # on a CPU the default is one thread timed by this process's CPU time: other processes do not count
    assert "(1 thread), clock: CPU time of this process" in header and "ratio: median of the per-repeat ratios " \
        "img/s / resnet18's img/s" in out


def test_bench_shows_intervals_and_warns_on_spread(capsys, monkeypatch):
    from wfsearch.proxy import measure as M

    def fake(models, *a, **k):
        samples = {"weightformer_test": [100.0, 101.0, 99.0, 100.0, 100.5],  # steady
                   "resnet18": [50.0, 20.0, 52.0, 49.0, 51.0]}  # one repeat lost to another process
        return {name: M.Throughput(samples[name]) for name in models}

    monkeypatch.setattr(M, "measure_throughput", fake)
    rc = main(["bench", "weightformer_test", "resnet18", "--res", "32", "--batch", "2", "--device", "cpu",
               "--threads", "2", "--clock", "wall", "--reference", "weightformer_test"])
    out = capsys.readouterr().out
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith("resnet18"))
    # 5 repeats: the 90% interval of the median is the range; the ratio is paired repeat by repeat
    assert "[20.0, 52.0]" in row and "0.50x" in row and "[0.20, 0.53]" in row and "64%" in row
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "resnet18 at 32 px" in warnings[0] and "--repeats 10" in warnings[0]
    assert "--threads 1 --clock process" in warnings[0]
    assert "2 threads" in out.splitlines()[0] and "wall clock" in out.splitlines()[0]


def test_bench_reference_must_be_measured(capsys):
    assert main(["bench", "weightformer_test", "--reference", "resnet18"]) == 2
    assert "--reference: 'resnet18': not one of the models measured" in capsys.readouterr().err


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


def test_bench_compile_mode_reaches_every_model(capsys, monkeypatch):
    from wfsearch.proxy import measure as M

    compiled = []
    monkeypatch.setattr(M, "compile_model", lambda model, mode, res, batch, *a, **k: (compiled.append((mode, res)), (model, 1.5))[1])
    rc = main(["bench", "weightformer_test", "resnet18", "--res", "32", "--batch", "2", "--repeats", "1",
               "--iters", "1", "--warmup", "0", "--device", "cpu", "--compile", "max-autotune"])
    out = capsys.readouterr().out
    assert rc == 0 and compiled == [("max-autotune", 32)] * 2
    assert "torch.compile mode max-autotune" in out.splitlines()[0]
    assert "# compile seconds at 32 (untimed): weightformer_test 1.5, resnet18 1.5" in out
    assert main(["bench", "weightformer_test", "--compile", "fast"]) == 2
    assert capsys.readouterr().err == "wfsearch: error: --compile=fast: must be none, default or max-autotune\n"
