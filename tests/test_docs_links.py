"""The docs' links into scikit-learn, numpy, PyTorch and Python.

The docs build offline, so intersphinx reads inventories committed in
``docs/_inventories`` (written by ``docs/make_inventories.py``). A reference
missing from them renders as plain text without any warning, and an inventory
written for another version can point at pages that no longer exist. Catches:
a ``:class:`` to scikit-learn or torch that would not link, an inventory name
that the installed package no longer has, a numpydoc type alias to nowhere.
"""
import glob
import importlib
import os
import re
import runpy
import zlib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _inventory(name):
    """{(domain:role, name)} from a Sphinx v2 objects.inv (4 header lines,
    then zlib-compressed 'name domain:role priority uri dispname' lines)."""
    with open(os.path.join(DOCS, "_inventories", f"{name}.inv"), "rb") as f:
        raw = f.read()
    header, _, body = raw.partition(b"zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2"), name
    entries = set()
    for line in zlib.decompress(body).decode().splitlines():
        m = re.match(r"(.+?)\s+(\S+):(\S+)\s+-?\d+\s+(\S*)\s+(.*)", line)
        uri = m.group(4)
        if uri.endswith("$"):  # the format's shorthand for "the name itself"
            uri = uri[:-1] + m.group(1)
        entries.add((m.group(2), m.group(3), m.group(1), uri))
    return entries


CONF = runpy.run_path(os.path.join(DOCS, "conf.py"))
INVENTORIES = {name: _inventory(name) for name in CONF["intersphinx_mapping"]}
PY_NAMES = {n for inv in INVENTORIES.values() for d, _, n, _ in inv if d == "py"}


def _import(dotted):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_the_mapping_reads_only_committed_files():
    for name, (url, path) in CONF["intersphinx_mapping"].items():
        assert url.startswith("https://") and not path.startswith("http"), name
        assert os.path.isfile(os.path.join(DOCS, path)), path


@pytest.mark.parametrize("project,prefix", [("sklearn", "sklearn."), ("torch", "torch.")])
def test_every_inventory_name_exists_in_the_installed_package(project, prefix):
    names = sorted(n for d, _, n, _ in INVENTORIES[project] if d == "py")
    assert len(names) > 100
    missing = []
    for name in names:
        assert name.startswith(prefix)
        try:
            _import(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"rerun docs/make_inventories.py: {missing[:10]}"


def test_every_inventory_uri_names_its_object():
    """The generated pages' anchors are the full name (scikit-learn's and
    torch's URL scheme): a uri for one name pointing at another's page is a
    bug of the generator."""
    for project in ("sklearn", "torch"):
        for d, role, name, uri in INVENTORIES[project]:
            if d == "py" and uri.startswith(("modules/generated/", "generated/")):
                assert uri.endswith(f"{name}.html#{name}"), uri


def _references():
    """Every (file, target) of a py cross-reference role to another project, in
    the docs' sources and the package's docstrings."""
    role = re.compile(r"(?::py)?:(?:class|func|meth|mod|obj|attr|exc):`~?([\w.]+)`"
                      r"|\{(?:py:)?(?:class|func|meth|mod|obj)\}`~?([\w.]+)`")
    files = glob.glob(os.path.join(DOCS, "*.rst")) + glob.glob(os.path.join(DOCS, "*.md"))
    files += glob.glob(os.path.join(ROOT, "skpred", "**", "*.py"), recursive=True)
    files += glob.glob(os.path.join(ROOT, "examples", "*.py"))
    for path in files:
        with open(path, encoding="utf-8") as f:
            for m in role.finditer(f.read()):
                target = m.group(1) or m.group(2)
                if target.split(".")[0] in ("sklearn", "torch", "numpy", "np"):
                    yield os.path.relpath(path, ROOT), target


def test_every_reference_to_another_project_is_in_an_inventory():
    refs = list(_references())
    assert any(t.startswith("sklearn.") for _, t in refs)  # the docs do link out
    unresolved = [(f, t) for f, t in refs if t not in PY_NAMES]
    assert not unresolved, unresolved


def test_every_type_alias_is_in_an_inventory_or_the_package():
    for word, target in CONF["numpydoc_xref_aliases"].items():
        term = re.fullmatch(r":term:`[^<]*<(\w+):([^>]+)>`", target)
        if term:
            project, name = term.groups()
            assert ("std", "term", name) in {e[:3] for e in INVENTORIES[project]}, word
        elif target.startswith("skpred."):
            _import(target)
        else:
            assert target in PY_NAMES, word
