"""Entry point: ``python -m skpred.experiments NAME [options]`` (or the
``skpred-experiments`` console script).

NAME is a figure (fig1, fig4, fig4right, fig5, fig6), ``ablation`` (fig4
under the authors' settings and each earlier departure from them),
``claims`` (the paper's claims against saved results, with verdicts),
``demo`` (the dense and SE-Emp networks at four alpha fractions, trained
longer), or ``plot FIGURE --out DIR`` to redraw a figure from saved
results. The README's main job
(``make demo``) is ``fig4 --quick``.
"""

import importlib
import sys

EXPERIMENTS = {
    "demo": "skpred.experiments.demo",
    "fig1": "skpred.experiments.fig1",
    "fig4": "skpred.experiments.fig4",
    "fig4right": "skpred.experiments.fig4right",
    "fig5": "skpred.experiments.fig5",
    "fig6": "skpred.experiments.fig6",
    "ablation": "skpred.experiments.ablation",
    "claims": "skpred.experiments.claims",
}
FIGURES = [n for n in EXPERIMENTS if n.startswith("fig") or n == "ablation"]


def _usage():
    print(f"usage: python -m skpred.experiments NAME [options] | plot FIGURE [--out DIR]\n"
          f"NAME is one of: {', '.join(EXPERIMENTS)}; `NAME --help` lists its options.")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "plot":
        import argparse

        p = argparse.ArgumentParser(prog="python -m skpred.experiments plot")
        p.add_argument("figure", choices=FIGURES)
        p.add_argument("--out", default="results")
        args = p.parse_args(argv[1:])
        importlib.import_module(EXPERIMENTS[args.figure]).plot(args.out)
        return 0
    if not argv or argv[0] not in EXPERIMENTS:
        _usage()
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return importlib.import_module(EXPERIMENTS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
