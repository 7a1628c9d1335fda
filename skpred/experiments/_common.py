"""What every figure module shares: the command line, presets, result files."""

import argparse
import copy
import csv
import json
import os
import time

import numpy as np

from .._device import machine


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
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    p.add_argument("--seeds", type=int, default=1,
                   help="repeat the run with seeds seed, seed+1, ... (each redraws alpha, the "
                        "initialisation and the split); tables then give the mean and a 95%% "
                        "interval over the seeds")
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


def finish(args, filename, rows, table_columns, *, keys, outcome="test_error", **meta):
    """Write this seed's rows after the earlier seeds' (each row gets a
    ``seed`` column; the run's settings go beside them as JSON) and print the
    table; with several seeds, also write and print ``<name>_summary.csv``:
    per ``keys`` group, the mean of ``outcome`` and its 95% interval."""
    rows = [dict(seed=args.seed, **r) for r in rows]
    everything = list(getattr(args, "previous_rows", [])) + rows
    seeds = sorted({r["seed"] for r in everything})
    write_rows(args.out, filename, everything,
               meta=dict(preset=args.preset, seeds=seeds, data=args.data, keys=list(keys),
                         outcome=outcome, machine=machine(), date=time.strftime("%Y-%m-%d"),
                         **meta))
    print_table(rows, table_columns)
    if len(seeds) > 1:
        summary = summarize(everything, keys, outcome)
        write_rows(args.out, filename.replace(".csv", "_summary.csv"), summary)
        print_table(summary, list(summary[0]))
    return everything


def t_interval(values, level=0.95):
    """Mean and the Student t interval of the mean of ``values`` (NaN
    bounds for a single value)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def group_by(rows, keys):
    """``{(values of keys): [rows]}``, the groups in first-seen order."""
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return groups


def summarize(rows, keys, outcome):
    """Per group of ``keys`` (in first-seen order): the seeds, the mean of
    ``outcome``, its 95% t interval, and the mean fraction learned."""
    out = []
    for key, members in group_by(rows, keys).items():
        mean, low, high = t_interval([m[outcome] for m in members])
        row = dict(zip(keys, key), n_seeds=len(members))
        if "fraction_learned" in members[0] and "fraction_learned" not in keys:
            row["fraction_learned"] = round(float(np.mean([m["fraction_learned"]
                                                           for m in members])), 5)
        row.update({f"{outcome}_mean": round(mean, 5), f"{outcome}_low": round(low, 5),
                    f"{outcome}_high": round(high, 5)})
        out.append(row)
    return out


def verdict(low, high, bound):
    """The rule every claims table follows, for a claim ``difference <
    bound`` measured as a 95% interval (low, high): "holds" where the whole
    interval is below the bound, "does not hold" where it is wholly above,
    "not contradicted" where the bound lies inside it (the claim is within
    the noise); "one seed" where there is no interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "one seed"
    if high < bound:
        return "holds"
    if low > bound:
        return "does not hold"
    return "not contradicted"


def results_figure(out, filename, **subplots):
    """The per-group summary of a results CSV (:func:`summarize` with the
    keys and outcome its JSON records: one row per group, the mean and 95%
    interval over the seeds) and a new figure to draw them on."""
    fig, axes = pyplot().subplots(**subplots)
    return read_summary(out, filename), fig, axes


def read_meta(out, filename):
    """The JSON written beside the results CSV ``out/filename``."""
    with open(os.path.join(out, os.path.splitext(filename)[0] + ".json")) as f:
        return json.load(f)


def read_summary(out, filename):
    """:func:`summarize` of the rows of ``out/filename``."""
    meta = read_meta(out, filename)
    return summarize(read_rows(out, filename), meta["keys"], meta["outcome"])


def draw_series(ax, rows, outcome, x="fraction_learned", **style):
    """A line of the groups' means against ``x``, with the 95% intervals as
    error bars where there are several seeds."""
    pts = sorted((r[x], r[f"{outcome}_mean"], r[f"{outcome}_low"], r[f"{outcome}_high"])
                 for r in rows)
    xs, mean, low, high = map(np.array, zip(*pts))
    if np.all(np.isfinite(low)):
        ax.errorbar(xs, mean, yerr=[mean - low, high - mean], capsize=3, marker="o", **style)
    else:
        ax.plot(xs, mean, marker="o", **style)


def draw_reference(ax, row, outcome, **style):
    """A horizontal line at a group's mean (the dense network), its interval
    shaded where there are several seeds."""
    line = ax.axhline(row[f"{outcome}_mean"], ls="--", **style)
    if np.isfinite(row[f"{outcome}_low"]):
        ax.axhspan(row[f"{outcome}_low"], row[f"{outcome}_high"], alpha=0.15,
                   color=line.get_color())


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
    """What every figure's ``main`` does once its arguments are parsed: the
    run once per seed (``--seeds``), each seed's rows written after the
    earlier ones, then the plot."""
    if args.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    previous = []
    first = args.seed
    for seed in range(first, first + args.seeds):
        one = copy.copy(args)
        one.seed, one.previous_rows = seed, previous
        if args.seeds > 1:
            progress(f"seed {seed} ({seed - first + 1} of {args.seeds})")
        previous = run(one)
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
