"""benchmarks/_report.py and update_readme.py: the README's benchmark tables
come from the JSON the benchmarks write."""

import json
import os
import re
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture
def tools(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    import _report
    import update_readme
    yield _report, update_readme
    for name in ("_report", "update_readme"):
        sys.modules.pop(name, None)


def test_emit_prints_and_writes_the_table(tools, tmp_path, capsys):
    _report, _ = tools
    path = tmp_path / "x.json"
    _report.emit("x", ["a", "b"], [[1, "2.50"], ["c", 3]], {"raw": [1.0]}, "python x.py",
                 str(path))
    out = capsys.readouterr().out
    assert "| a | b |\n|---|---|\n| 1 | 2.50 |\n| c | 3 |" in out
    result = json.loads(path.read_text())
    assert result["rows"] == [["1", "2.50"], ["c", "3"]]
    assert result["data"] == {"raw": [1.0]} and result["command"] == "python x.py"
    assert "torch" in result["machine"]
    _report.emit("y", ["a"], [[1]], {}, "cmd", "")  # "" writes nothing
    assert sorted(os.listdir(tmp_path)) == ["x.json"]


def test_update_rewrites_only_marked_blocks_with_a_json(tools, tmp_path):
    # Caught: a block replaced with another benchmark's table, text outside
    # the markers touched, a block without its JSON emptied.
    _, update_readme = tools
    (tmp_path / "one.json").write_text(json.dumps(dict(
        header=["k", "s"], rows=[["64", "1.00"]], command="python one.py", date="2026-11-27",
        machine="m")))
    readme = ("intro\n<!-- bench: one -->\nold table\n<!-- /bench -->\nmiddle\n"
              "<!-- bench: two -->\nkept\n<!-- /bench -->\nend\n")
    text, done = update_readme.update(readme, str(tmp_path))
    assert done == ["one"]
    assert text == ("intro\n<!-- bench: one -->\n| k | s |\n|---|---|\n| 64 | 1.00 |\n\n"
                    "<sub>`python one.py`, 2026-11-27, m</sub>\n<!-- /bench -->\nmiddle\n"
                    "<!-- bench: two -->\nkept\n<!-- /bench -->\nend\n")
    assert update_readme.update(text, str(tmp_path))[0] == text  # idempotent


@pytest.mark.parametrize("where", ["README.md", os.path.join("docs", "benchmarks.md"),
                                   os.path.join("docs", "choosing.md"),
                                   os.path.join("docs", "authors_settings.md"),
                                   os.path.join("docs", "reproducing.md")])
def test_every_marked_table_is_its_json(tools, where):
    # The tables are regenerated from committed results: a marker without
    # its JSON, or a table edited by hand (a number that disagrees with the
    # JSON it claims to come from), fails here.
    _, update_readme = tools
    root = os.path.dirname(BENCH)
    with open(os.path.join(root, where)) as f:
        text = f.read()
    names = re.findall(r"<!-- bench: ([\w-]+) -->", text)
    assert names, f"{where} marks no benchmark table"
    for name in names:
        assert os.path.exists(os.path.join(BENCH, "results", f"{name}.json")), name
    assert update_readme.update(text, os.path.join(BENCH, "results"))[0] == text


def test_the_readme_and_the_benchmarks_page_are_the_marked_files(tools):
    # Caught: update_readme.py no longer rewriting one of them.
    _, update_readme = tools
    root = os.path.dirname(BENCH)
    assert [os.path.relpath(p, root) for p in update_readme.marked_files(root)] == [
        "README.md", os.path.join("docs", "benchmarks.md"), os.path.join("docs", "choosing.md"),
        os.path.join("docs", "authors_settings.md"), os.path.join("docs", "reproducing.md")]
