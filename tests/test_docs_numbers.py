"""Numbers quoted in the README and the docs against their one source.

Catches: a run time re-measured in one place and not in another (the README
said 80 s where the quick start said 85 s), a time quoted without being
recorded in ``benchmarks/results/run_times.json``, prose that quotes a
benchmark table differently from the table's JSON, and a snippet whose
printed result in the docs is not what the snippet prints.
"""
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")


def _read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def _json(name):
    with open(os.path.join(RESULTS, name), encoding="utf-8") as f:
        return json.load(f)


RUN = _json("run_times.json")
SECONDS = RUN["seconds"]


def _secs(key):
    v = SECONDS[key]
    return f"{v:g} s"


def _min_s(key):
    m, s = divmod(int(SECONDS[key]), 60)
    return f"{m} min {s} s"


def _about_minutes(key):
    m = SECONDS[key] / 60
    return "about a minute" if round(m, 1) == 1 else f"about {m:g} minutes"


# (file, text with one "{}" where the number stands, what the number must be)
TIMES = [
    ("README.md", "the package) {}, `make demo`", lambda: _secs("setup")),
    ("README.md", "`make demo` then {},", lambda: _secs("demo")),
    ("README.md", "`make test` {} (", lambda: _min_s("test")),
    ("README.md", "in such a clone) took {}. A", lambda: _min_s("ci")),
    ("README.md", "# {} on a 2-core AMD EPYC (AVX-512), Python and torch",
     lambda: _secs("readme_pipeline_snippet")),
    ("docs/overview.md", "# {} on a 2-core AMD EPYC (AVX-512), Python and torch",
     lambda: _secs("readme_pipeline_snippet")),
    ("docs/quickstart.rst", "(about {}; the README gives", lambda: _secs("demo")),
    ("docs/quickstart.rst", "se  ({} on a 2-core", lambda: _secs("quickstart_snippet")),
    ("docs/overview.md", "0.884: {} on a 2-core", lambda: _secs("overview_grid_snippet")),
    ("docs/choosing.md", "that took {} on a 2-core", lambda: _secs("choosing_grid")),
    ("docs/reproducing.md", "`fig1 --quick` ({})", lambda: _secs("fig1_quick")),
    ("docs/reproducing.md", "`fig4right --quick` ({})", lambda: _secs("fig4right_quick")),
    ("docs/reproducing.md", "`fig5 --quick` ({})", lambda: _secs("fig5_quick")),
    ("docs/reproducing.md", "`fig6 --quick` ({})", lambda: _secs("fig6_quick")),
    ("docs/benchmarks.md", "sklearn 0.940 in {},",
     lambda: _secs("first_contact_sklearn_mnist")),
    ("docs/benchmarks.md", "`PredictedMLPClassifier()` 0.945 in {},",
     lambda: _secs("first_contact_mlp_mnist")),
    ("docs/benchmarks.md", "0.971\nin {}. Every", lambda: _secs("first_contact_convnet_mnist")),
    ("docs/development.md", "(90.6%) in {};", lambda: _about_minutes("mutation_kernels")),
    ("docs/development.md", "`mutmut run \"skpred.nn*\"`,\n  {})",
     lambda: _about_minutes("mutation_nn")),
]

# The files whose prose may quote times; the changelog is history, not checked.
PROSE = ["README.md", "docs/overview.md", "docs/quickstart.rst", "docs/reproducing.md",
         "docs/choosing.md", "docs/benchmarks.md", "docs/development.md",
         "docs/user_guide.rst", "docs/howto.rst", "docs/install.rst", "docs/index.rst"]
_TIME = re.compile(r"\b\d+(?:\.\d+)? ?(?:s|min|seconds|minutes)\b|about a minute")


def _prose(rel):
    """The file without its generated blocks (checked by test_benchmark_report)."""
    return re.sub(r"<!-- bench: \w+ -->.*?<!-- /bench -->", "", _read(rel), flags=re.S)


@pytest.mark.parametrize("rel,template,expected", TIMES,
                         ids=[f"{r}:{t.split('{}')[0][-24:]}" for r, t, _ in TIMES])
def test_quoted_time_is_the_recorded_one(rel, template, expected):
    text = _prose(rel)
    before, after = template.split("{}")
    found = re.findall(re.escape(before) + r"(.{1,20}?)" + re.escape(after), text)
    assert found, f"{rel}: no sentence {template!r} any more (update TIMES)"
    assert found == [expected()] * len(found), (
        f"{rel} says {found} where run_times.json gives {expected()!r}")


@pytest.mark.parametrize("rel", PROSE)
def test_every_quoted_time_is_recorded(rel):
    """A time in prose that no TIMES entry covers is a number with no source."""
    text = _prose(rel)
    covered = []
    for r, template, expected in TIMES:
        if r == rel:
            needle = template.replace("{}", expected())
            start = text.find(needle)
            while start >= 0:
                covered.append((start, start + len(needle)))
                start = text.find(needle, start + 1)
    if rel == "docs/benchmarks.md":
        for needle in _distributed_sentences():
            start = text.find(needle)
            covered.append((start, start + len(needle)))
    loose = [m.group(0) for m in _TIME.finditer(text)
             if not any(a <= m.start() and m.end() <= b for a, b in covered)]
    assert not loose, f"{rel} quotes times not in run_times.json: {loose}"


def test_the_test_counts_are_the_recorded_ones():
    c = RUN["test_counts"]
    text = _read("README.md")
    assert f"({c['passed']} passed, {c['skipped']} skipped" in text
    assert f"{c['xfailed']} expected failures" in text
    assert f"{c['deselected_slow']} `slow` tests" in text


def test_every_quoted_cpu_is_the_recorded_one():
    """Times say on what CPU; the one in run_times.json."""
    cpu = RUN["cpu"].split(" (")[0]  # "2-core AMD EPYC"
    quoting = [(rel, template.replace("{}", expected()))
               for rel, template, expected in TIMES if "2-core" in template]
    assert quoting
    for rel, needle in quoting:
        text = " ".join(_prose(rel).split())  # line breaks as spaces
        start = text.find(" ".join(needle.split()))
        assert start >= 0 and cpu in text[start:start + len(needle) + 40], (rel, needle)
    assert cpu in " ".join(_read("README.md").split())
    # the quick start's times were measured on their own machine, named there
    readme = " ".join(_read("README.md").split())
    start = readme.find("Measured in a fresh clone")
    assert start >= 0 and RUN["quickstart_cpu"].split(" (")[0] in readme[start:start + 120]


def _distributed_sentences():
    """The synchronisation cost quoted under the distributed table: the
    difference of the table's own per-epoch times, and the bytes sent."""
    data = _json("distributed.json")["data"]
    by = {(d["model"], d["workers"]): d for d in data}
    [model] = {d["model"] for d in data} - {"dense"}
    cost = {m: by[(m, 2)]["seconds_per_epoch"] - by[(m, 1)]["seconds_per_epoch"]
            for m in ("dense", model)}
    return [f"{cost['dense']:.2f} s per\nepoch for the dense network, "
            f"{cost[model]:.2f} s for the predicted one",
            f"sends {by[(model, 2)]['bytes_per_step']:,} bytes against "
            f"{by[('dense', 2)]['bytes_per_step']:,} for"]


def test_distributed_prose_is_its_table():
    text = _prose("docs/benchmarks.md")
    for sentence in _distributed_sentences():
        assert sentence in text


def _run_snippet(code):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def _code_block(rel, marker):
    """The fenced or indented code block of ``rel`` that contains ``marker``."""
    text = _read(rel)
    if rel.endswith(".md"):
        blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    else:
        blocks = [textwrap.dedent(b) for b in
                  re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)]
    [block] = [b for b in blocks if marker in b]
    return block


@pytest.mark.slow
@pytest.mark.parametrize("rel", ["README.md", "docs/overview.md"])
def test_pipeline_snippet_prints_what_the_docs_say(rel):
    block = _code_block(rel, "load_breast_cancer")
    said = re.search(r"# ([0-9.]+) (\w+)\n", block)
    score, kind = _run_snippet(block)
    # 171 test rows: a different CPU's float rounding may flip a row or two
    assert abs(float(score) - float(said.group(1))) <= 2 / 171 + 1e-9
    assert kind == said.group(2)


@pytest.mark.slow
def test_quickstart_snippet_prints_what_the_docs_say():
    block = _code_block("docs/quickstart.rst", "fraction_learned_")
    said = re.search(r"# ([0-9.]+) ([0-9.]+) (\w+) ", block)
    score, fraction, kind = _run_snippet(block)
    assert abs(float(score) - float(said.group(1))) <= 3 / 1250 + 1e-9  # 1,250 test digits
    assert f"{float(fraction):.4f}" == said.group(2)
    assert kind == said.group(3)
