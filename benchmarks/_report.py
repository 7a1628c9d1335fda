"""A benchmark's table: printed as markdown and written as JSON.

Every benchmark whose table the README shows calls :func:`emit`; the JSON
(``benchmarks/results/NAME.json`` unless ``--json`` says otherwise) holds the
table's rows as printed, the raw numbers and how they were measured, and
``python benchmarks/update_readme.py`` rewrites the README's copy of each
table (between ``<!-- bench: NAME -->`` and ``<!-- /bench -->``) from it.
"""

import json
import os
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def markdown(header, rows):
    """The rows (lists of strings) under the header as a markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


from skpred._device import machine  # noqa: E402  (the CPU, threads, torch, GPU)


def emit(name, header, rows, data, command, json_path=None):
    """Print the table and write it, with ``data`` (raw numbers), as JSON.

    ``json_path``: None writes ``benchmarks/results/NAME.json``, "" nothing.
    """
    table = markdown(header, rows)
    print(table, flush=True)
    if json_path == "":
        return table
    path = json_path or os.path.join(RESULTS, f"{name}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(dict(name=name, command=command, machine=machine(),
                       date=time.strftime("%Y-%m-%d"), header=list(header),
                       rows=[[str(c) for c in r] for r in rows], data=data), f, indent=1)
    print(f"(written to {path})")
    return table
