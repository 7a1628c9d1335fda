"""Entry point: ``python -m skpred.experiments NAME [options]``."""

import importlib
import sys

EXPERIMENTS = {
    "demo": "skpred.experiments.demo",
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in EXPERIMENTS:
        names = ", ".join(sorted(EXPERIMENTS))
        print(f"usage: python -m skpred.experiments NAME [options]; NAME is one of: {names}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(EXPERIMENTS[argv[0]])
    return module.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
