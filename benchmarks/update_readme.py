"""Rewrite the generated tables of the README, docs/benchmarks.md, docs/choosing.md,
docs/authors_settings.md and docs/reproducing.md from benchmarks/results/*.json.

Each table sits between ``<!-- bench: NAME -->`` and ``<!-- /bench -->``;
this replaces what is between them with the table of ``results/NAME.json``
(as the benchmark printed it) and a line saying how and where it was
measured. Tables without a JSON are left as they are.

    python benchmarks/update_readme.py [--file README.md --file ...] [--results DIR]
"""

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import RESULTS, markdown  # noqa: E402

BLOCK = re.compile(r"(<!-- bench: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench -->)", re.S)


def marked_files(root):
    """The files whose tables come from the benchmarks' JSON."""
    return [os.path.join(root, "README.md"), os.path.join(root, "docs", "benchmarks.md"),
            os.path.join(root, "docs", "choosing.md"),
            os.path.join(root, "docs", "authors_settings.md"),
            os.path.join(root, "docs", "reproducing.md")]


def render(result):
    return (markdown(result["header"], result["rows"]) + "\n\n"
            f"<sub>`{result['command']}`, {result['date']}, {result['machine']}</sub>\n")


def update(text, results_dir):
    """The README text with every block that has a JSON rewritten, and the
    names of the blocks rewritten."""
    done = []

    def replace(m):
        path = os.path.join(results_dir, m.group("name") + ".json")
        if not os.path.exists(path):
            return m.group(0)
        with open(path) as f:
            result = json.load(f)
        done.append(m.group("name"))
        return m.group(1) + render(result) + m.group(4)

    return BLOCK.sub(replace, text), done


def main(argv=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", action="append", dest="files",
                        help="a Markdown file with marked tables (repeatable; default: the "
                             "README and docs/benchmarks.md)")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    for path in args.files or marked_files(root):
        with open(path) as f:
            text = f.read()
        text, done = update(text, args.results)
        with open(path, "w") as f:
            f.write(text)
        print(f"{os.path.relpath(path, root)} rewritten:", ", ".join(done) or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
