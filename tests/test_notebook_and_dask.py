"""The example notebook executes top to bottom; the Dask recipe of the user
guide runs a grid search on a 2-worker LocalCluster."""

import os
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

HERE = os.path.dirname(__file__)
NOTEBOOK = os.path.join(HERE, os.pardir, "examples", "notebooks", "grid_search_fraction.ipynb")


def test_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="needs the notebook extra")
    nbclient = pytest.importorskip("nbclient", reason="needs the notebook extra")
    pytest.importorskip("pandas", reason="needs the notebook extra")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert (tmp_path / "accuracy_vs_fraction.png").exists()
    # the last cell shows the parameter-count table
    assert "fraction_learned" in str(nb.cells[-1].outputs)


def test_grid_search_on_a_dask_local_cluster(digits):
    distributed = pytest.importorskip("distributed", reason="needs the distributed extra")
    import joblib
    from sklearn.model_selection import GridSearchCV

    from skpred import PredictedMLPClassifier

    X, y = digits
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        clf = PredictedMLPClassifier((32,), dictionary="se", solver="adam", learning_rate_init=0.01,
                                     max_iter=10, device="cpu", random_state=0)
        search = GridSearchCV(clf, {"alpha_fraction": [0.25, 0.5]}, cv=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with joblib.parallel_backend("dask"), distributed.get_task_stream(client) as ts:
                search.fit(X, y)
        assert len(client.scheduler_info()["workers"]) == 2
        # the fits ran on the cluster's workers, not in this process
        workers = {t["worker"] for t in ts.data}
        assert ts.data and workers <= set(client.scheduler_info()["workers"])
    assert np.all(search.cv_results_["mean_test_score"] > 0.7)
