"""The example notebook executes top to bottom; the Dask recipe of the user
guide runs a grid search on a 2-worker LocalCluster."""

import json
import os
import sys
import uuid
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

HERE = os.path.dirname(__file__)
NOTEBOOK = os.path.join(HERE, os.pardir, "examples", "notebooks", "grid_search_fraction.ipynb")


def test_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="needs the notebook extra")
    nbclient = pytest.importorskip("nbclient", reason="needs the notebook extra")
    pytest.importorskip("pandas", reason="needs the notebook extra")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # A kernelspec of this interpreter under a name of its own, first on
    # JUPYTER_PATH: "python3" would pick up whichever kernel the user (or
    # another environment) registered under that name, not this skpred.
    name = f"skpred-test-{uuid.uuid4().hex}"
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name=name,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert (tmp_path / "accuracy_vs_fraction.png").exists()
    # the last cell shows the parameter-count table
    assert "fraction_learned" in str(nb.cells[-1].outputs)


def test_grid_search_on_a_dask_local_cluster(digits):
    """The user guide's recipe: GridSearchCV under joblib's Dask backend fits
    on the cluster's worker processes. Breakage caught: the search silently
    running in this process (the backend not taking effect), or estimators
    that cannot travel to a worker and back."""
    distributed = pytest.importorskip("distributed", reason="needs the distributed extra")
    import joblib
    from sklearn.model_selection import GridSearchCV

    from skpred import PredictedMLPClassifier

    X, y = digits
    X, y = X[:400], y[:400]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        clf = PredictedMLPClassifier((16,), dictionary="se", solver="adam", learning_rate_init=0.01,
                                     max_iter=30, device="cpu", random_state=0)
        # a second "score" that reports the process each split was fitted
        # and scored in (scikit-learn fits and scores a split in one task)
        scoring = {"accuracy": "accuracy", "pid": lambda est, X_, y_: os.getpid()}
        search = GridSearchCV(clf, {"alpha_fraction": [0.25, 0.5]}, cv=2, scoring=scoring,
                              refit="accuracy")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with joblib.parallel_backend("dask"):
                search.fit(X, y)
    pids = {int(search.cv_results_[f"split{k}_test_pid"][i]) for k in range(2) for i in range(2)}
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    assert pids <= worker_pids  # every split ran in a worker process, none here
    # the fits learned something (chance is 0.1): measured 0.61 and 0.73
    # (400 held-out predictions per cell, SE <= 0.025); the floor 0.25 is
    # far below the lower one and 6 SE above chance
    assert np.all(search.cv_results_["mean_test_accuracy"] > 0.25)
