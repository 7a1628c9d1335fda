"""The paper's claims against saved figure results, each with a verdict.

``python -m skpred.experiments claims --results DIR`` reads the CSVs the
figure commands wrote in DIR (run them with ``--seeds 5`` or more), and for
each claim measures one difference per seed (paired: both sides of a seed
share its split), its mean and 95% t interval, and gives a verdict by one
rule (:func:`skpred.experiments._common.verdict`): for a claim "difference <
bound", "holds" where the whole interval is below the bound, "does not hold"
where it is wholly above, "not contradicted" where the bound lies inside it.
``--tables DIR`` writes it (and the figures' tables) as JSON, as the
README's and docs' generated blocks read them.
"""

import argparse
import json
import os
import time

from . import _common

#: Each claim: the figure, the paper's claim, how it is tested here, the
#: results file and column, the rows of each side (column -> allowed values;
#: several rows on a side: the best, i.e. lowest, per seed), and the bound
#: of ``side a - side b`` under which the claim holds.
CLAIMS = [
    dict(figure="Fig 4 left", claim="over 95% of the weights predicted with no drop in accuracy",
         test="SE-Emp at 5% learned within 1 point of the dense network",
         file="fig4.csv", outcome="test_error",
         a=dict(method=("SE-Emp",), alpha_fraction=(0.05,)), b=dict(method=("nokernel",)),
         bound=0.01),
    dict(figure="Fig 4 left", claim="SE-Emp and SE-Emp2 are the best dictionaries",
         test="the better of SE-Emp and SE-Emp2 at 5% learned below every other dictionary",
         file="fig4.csv", outcome="test_error",
         a=dict(method=("SE-Emp", "SE-Emp2"), alpha_fraction=(0.05,)),
         b=dict(method=("LowRank", "RandCon", "RandFixU", "SE-AE", "Emp-Emp"),
                alpha_fraction=(0.05,)),
         bound=0.0),
    dict(figure="Fig 4 right", claim="with several columns few parameters are needed (TIMIT)",
         test="10 (here 8) columns below 1 column at 5% learned",
         file="fig4right.csv", outcome="test_error",
         a=dict(requested_columns=(10,), alpha_fraction=(0.05,)),
         b=dict(requested_columns=(1,), alpha_fraction=(0.05,)), bound=0.0),
    dict(figure="Fig 5", claim="a conv net learning 25% of its parameters loses almost nothing",
         test="se at 25% within 1 point of the dense net", file="fig5.csv",
         outcome="test_error", a=dict(model=("se",), alpha_fraction=(0.25,)),
         b=dict(model=("dense",)), bound=0.01),
    dict(figure="Fig 6 left", claim="RICA predicting half of each feature: no real drop",
         test="RICA se at 50% within 1 point of RICA", file="fig6.csv", outcome="error_mean",
         a=dict(panel=("left",), model=("RICA se",), alpha_fraction=(0.5,)),
         b=dict(panel=("left",), model=("RICA",)), bound=0.01),
    dict(figure="Fig 6 right",
         claim="at equal dynamic parameters, RICA-50% with twice the features beats RICA",
         test="RICA se 50% with 2k features below RICA with k", file="fig6.csv",
         outcome="error_mean", a=dict(model=("RICA se 50% 2k",)), b=dict(model=("RICA k",)),
         bound=0.0),
    dict(figure="Fig 1", claim="learned features are smooth: predicted well from a random subset",
         test="MLP features' relative error at 25% kept below white noise's",
         file="fig1.csv", outcome="mean_relative_error",
         a=dict(source=("mlp_mnist",), kept_fraction=(0.25,)),
         b=dict(source=("white_noise",), kept_fraction=(0.25,)), bound=0.0),
]
HEADER = ["figure", "paper's claim", "tested as", "measured (mean over seeds)",
          "difference, 95% interval", "verdict"]


def _side(rows, select, outcome, seed, file):
    values = [r[outcome] for r in rows if r["seed"] == seed
              and all(r[c] in allowed for c, allowed in select.items())]
    if not values:
        raise ValueError(f"{file} has no rows with {select} for seed {seed:g}: run the "
                         f"figure command with its --quick (or paper) preset first.")
    return min(values)


def measure(claim, rows):
    """One claim's per-seed sides, the difference's mean and interval, the verdict."""
    seeds = sorted({r["seed"] for r in rows})
    a = [_side(rows, claim["a"], claim["outcome"], s, claim["file"]) for s in seeds]
    b = [_side(rows, claim["b"], claim["outcome"], s, claim["file"]) for s in seeds]
    mean, low, high = _common.t_interval([x - y for x, y in zip(a, b)])
    return dict(seeds=seeds, a=a, b=b, mean=mean, low=low, high=high,
                verdict=_common.verdict(low, high, claim["bound"]))


def _num(v):
    return f"{v:+.3f}".replace("+0.", "+.").replace("-0.", "-.")


def table(results):
    """The claims table: (header, rows of strings, raw numbers, machine)."""
    rows, data, machines = [], [], set()
    cache = {}
    for claim in CLAIMS:
        if claim["file"] not in cache:
            cache[claim["file"]] = _common.read_rows(results, claim["file"])
            machines.add(_machine(results, claim["file"]))
        m = measure(claim, cache[claim["file"]])
        n = len(m["seeds"])
        mean_a, mean_b = sum(m["a"]) / n, sum(m["b"]) / n
        interval = ("one seed" if m["verdict"] == "one seed"
                    else f"{_num(m['mean'])} [{_num(m['low'])}, {_num(m['high'])}]")
        rows.append([claim["figure"], claim["claim"], claim["test"],
                     f"{mean_a:.3f} vs {mean_b:.3f} ({n} seed{'s' if n > 1 else ''})",
                     f"{interval}; bound {claim['bound']:g}", m["verdict"]])
        data.append(dict(figure=claim["figure"], test=claim["test"], bound=claim["bound"], **m))
    return HEADER, rows, data, "; ".join(sorted(machines))


def _cell(values):
    """``mean [low, high]`` of per-seed values, three decimals."""
    mean, low, high = _common.t_interval(values)
    if not (low == low):  # one seed
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def fig4_table(results):
    """The fig4 results, one row per method: the fraction learned at each
    alpha, and the test error's mean and 95% interval over the seeds."""
    rows = _common.read_rows(results, "fig4.csv")
    fractions = sorted({r["alpha_fraction"] for r in rows if r["method"] != "nokernel"})
    n = len({r["seed"] for r in rows})
    header = ["method", "fraction learned"] + [
        f"test error, alpha {f:g} ({n} seed{'s' if n > 1 else ''})" for f in fractions]
    out, data = [], []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        cells, learned = [], []
        for f in ([1.0] if method == "nokernel" else fractions):
            at = [r for r in mine if r["alpha_fraction"] == f]
            cells.append(_cell([r["test_error"] for r in at]))
            learned.append(f"{at[0]['fraction_learned']:.3f}")
            data.append(dict(method=method, alpha_fraction=f,
                             errors=[r["test_error"] for r in at]))
        if method == "nokernel":
            out.append(["nokernel (dense)", "1.000", f"{cells[0]} (alpha 1)"]
                       + [""] * (len(fractions) - 1))
        else:
            out.append([method, " / ".join(learned)] + cells)
    return header, out, data


def summary_table(results, filename):
    """A figure's per-point summary: its keys, the fraction learned, and
    the outcome's mean and 95% interval over the seeds."""
    meta = _common.read_meta(results, filename)
    keys, outcome = meta["keys"], meta["outcome"]
    rows = _common.read_rows(results, filename)
    n = len({r["seed"] for r in rows})
    header = list(keys) + (["fraction learned"] if "fraction_learned" in rows[0] else []) + [
        f"{outcome.replace('_', ' ')} ({n} seed{'s' if n > 1 else ''}: mean [95% interval])"]
    out, data = [], []
    for key, members in _common.group_by(rows, keys).items():
        values = [m[outcome] for m in members]
        cells = [f"{k:g}" if isinstance(k, float) else str(k) for k in key]
        if "fraction_learned" in members[0]:
            cells.append(f"{members[0]['fraction_learned']:.3f}")
        out.append(cells + [_cell(values)])
        data.append(dict(zip(keys, key), values=values))
    return header, out, data


def ablation_table(results):
    """Per variant: each method's mean test error at each fraction, and how
    many points moved against the authors' setting (a 95% interval of the
    paired per-seed difference that excludes zero: up or down)."""
    rows = _common.read_rows(results, "ablation.csv")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})

    def errors(variant, method, frac):
        by_seed = {r["seed"]: r["test_error"] for r in rows if r["variant"] == variant
                   and r["method"] == method and r["alpha_fraction"] == frac}
        return [by_seed[s] for s in seeds]

    points = list(dict.fromkeys((r["method"], r["alpha_fraction"]) for r in rows))
    header = ["variant"] + [m if m != "nokernel" else "dense" for m in methods] + [
        "points moved vs authors (worse / better)"]
    out, data = [], []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        cells = []
        for m in methods:
            fr = [f for mm, f in points if mm == m]
            cells.append(" / ".join(f"{sum(errors(variant, m, f)) / len(seeds):.3f}"
                                    for f in fr))
        worse = better = 0
        if variant != "authors":
            for m, f in points:
                d = [a - b for a, b in zip(errors(variant, m, f), errors("authors", m, f))]
                _, low, high = _common.t_interval(d)
                worse += low > 0
                better += high < 0
        out.append([variant] + cells + ["-" if variant == "authors"
                                        else f"{worse} / {better} of {len(points)}"])
        data.append(dict(variant=variant, worse=worse, better=better, points=len(points)))
    return header, out, data


def _write(path, name, header, rows, data, machine, command):
    with open(path, "w") as f:
        json.dump(dict(name=name, command=command, machine=machine,
                       date=time.strftime("%Y-%m-%d"), header=header, rows=rows, data=data),
                  f, indent=1)


def _machine(results, filename):
    return _common.read_meta(results, filename).get("machine", "unknown machine")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m skpred.experiments claims", description=__doc__)
    p.add_argument("--results", default="results", help="folder of the figure commands' CSVs")
    p.add_argument("--tables", default=None,
                   help="write claims.json (and fig4_quick.json, ablation.json where those "
                        "results exist) here, as the README's generated blocks read them")
    args = p.parse_args(argv)
    header, rows, data, machine = table(args.results)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    print("\n".join(lines))
    if args.tables:
        os.makedirs(args.tables, exist_ok=True)
        _write(os.path.join(args.tables, "claims.json"), "claims", header, rows, data, machine,
               "python -m skpred.experiments claims, from FIG --quick --seeds 5")
        for name, filename, make, command in (
                ("fig4_quick", "fig4.csv", fig4_table,
                 "python -m skpred.experiments fig4 --quick --seeds 5"),
                ("ablation", "ablation.csv", ablation_table,
                 "python -m skpred.experiments ablation --quick --seeds 3"),
                *((f"{fig}_quick", f"{fig}.csv",
                   lambda results, filename=f"{fig}.csv": summary_table(results, filename),
                   f"python -m skpred.experiments {fig} --quick --seeds 5")
                  for fig in ("fig1", "fig4right", "fig5", "fig6"))):
            if os.path.exists(os.path.join(args.results, filename)):
                h, r, d = make(args.results)
                _write(os.path.join(args.tables, f"{name}.json"), name, h, r, d,
                       _machine(args.results, filename), command)
    return 0
