"""What every figure module shares: the command line, presets, result files."""

import argparse
import csv
import json
import os
import time


def parser_for(name, description, presets):
    """Argument parser with the flags every figure takes."""
    p = argparse.ArgumentParser(prog=f"python -m skpred.experiments {name}", description=description)
    p.add_argument("--preset", choices=sorted(presets), default="paper",
                   help="settings: 'paper' (the paper's, needs --data), 'quick' (bundled data, "
                        "minutes on 2 CPU cores), 'tiny' (seconds; for tests)")
    p.add_argument("--quick", dest="preset", action="store_const", const="quick",
                   help="same as --preset quick")
    p.add_argument("--data", default=None, help="folder of the full data set (standard formats)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="results", help="folder for the CSV/JSON results and PNG plots")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plot", action="store_true", help="only write the results")
    p.set_defaults(figure=name)
    return p


def bundled_mnist_split(seed):
    """The bundled 5,000 MNIST digits, split 80/20 stratified (the quick
    presets' data): X_train, X_test, y_train, y_test."""
    from sklearn.model_selection import train_test_split

    from ..datasets import load_mnist

    X, y = load_mnist(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)


def timed_fit(estimator, X, y):
    """Fit, silencing ConvergenceWarning (fixed-epoch budgets are intended);
    returns the seconds it took."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)
    return round(time.perf_counter() - t0, 2)


def fit_row(estimator, X_train, y_train, X_test, y_test, **keys):
    """Fit (timed) and score: a results row of ``keys`` then
    ``fraction_learned``, ``test_error`` and ``seconds``."""
    seconds = timed_fit(estimator, X_train, y_train)
    return dict(keys, fraction_learned=round(estimator.fraction_learned_, 5),
                test_error=round(1 - estimator.score(X_test, y_test), 5), seconds=seconds)


def finish(args, filename, rows, table_columns, **meta):
    """Write the rows (with the run's settings beside them) and print the table."""
    write_rows(args.out, filename, rows,
               meta=dict(preset=args.preset, seed=args.seed, data=args.data, **meta))
    print_table(rows, table_columns)
    return rows


def results_figure(out, filename, **subplots):
    """The rows of a results CSV and a new figure to draw them on."""
    fig, axes = pyplot().subplots(**subplots)
    return read_rows(out, filename), fig, axes


def split_for(args, cfg, load, needs):
    """The run's train/test split: ``load(args)``, the training part cut to
    the preset's ``n_train``. The paper preset needs ``--data`` (``needs``
    says what it holds)."""
    if args.preset == "paper" and not args.data:
        raise SystemExit(f"{args.figure} --preset paper needs --data {needs}; use --quick for "
                         f"the bundled stand-in.")
    X_tr, X_te, y_tr, y_te, *extra = load(args)
    if cfg["n_train"]:
        X_tr, y_tr = X_tr[:cfg["n_train"]], y_tr[:cfg["n_train"]]
    return (X_tr, X_te, y_tr, y_te, *extra)


def error_axes(ax, title, legend_size=None):
    """The labels every error-against-fraction plot carries."""
    ax.set_xlabel("fraction of parameters learned")
    ax.set_ylabel("test error")
    ax.set_title(title)
    ax.legend(fontsize=legend_size)
    ax.figure.tight_layout()


def run_and_plot(args, run, plot):
    """What every figure's ``main`` does once its arguments are parsed."""
    run(args)
    if not args.no_plot:
        plot(args.out)
    return 0


def progress(message):
    """One line of progress on stdout, time-stamped."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_rows(out, filename, rows, meta=None):
    """Write rows (list of dicts) as CSV, and meta (if any) as JSON beside it."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, filename)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if meta is not None:
        with open(os.path.splitext(path)[0] + ".json", "w") as f:
            json.dump(meta, f, indent=2, default=str)
    progress(f"wrote {path}")
    return path


def read_rows(out, filename):
    """Rows of a results CSV, numbers converted back."""
    with open(os.path.join(out, filename)) as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for k, v in row.items():
            try:
                row[k] = float(v)
            except (TypeError, ValueError):
                pass
    return rows


def print_table(rows, columns):
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(_fmt(r[c]).rjust(w) for c, w in zip(columns, widths)) + " |")


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def pyplot():
    """matplotlib's pyplot on a file-only backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out, name):
    """Write ``out/name.png`` and close the figure."""
    import matplotlib.pyplot as plt

    path = os.path.join(out, f"{name}.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    progress(f"wrote {path}")
    return path
