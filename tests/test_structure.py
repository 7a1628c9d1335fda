"""The package's import structure has no loop.

Read from the source with ``ast`` (nothing is imported): every ``import``
and ``from ... import`` in every module of ``skpred``, at module level or
inside a function, is an edge from the importing module to the imported
one. A loop (``_base -> _persist -> skpred -> estimators -> _base`` was
one) makes the import order fragile and hides which layer depends on
which.
"""

import ast
import os

import skpred

ROOT = os.path.dirname(os.path.abspath(skpred.__file__))


def _modules():
    """{dotted name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(ROOT))
            dotted = rel[:-3].replace(os.sep, ".")
            if dotted.endswith(".__init__"):
                dotted = dotted[: -len(".__init__")]
            found[dotted] = os.path.join(folder, name)
    return found


def import_graph():
    """{module: set of skpred modules it imports}."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        is_package = path.endswith("__init__.py")
        package = module if is_package else module.rpartition(".")[0]
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # "from pkg import sub" imports the submodule; a name defined
                # in pkg's __init__ is an import of the package itself
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # "skpred.nn._mlp.X" -> module
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def find_cycle(graph):
    """One import loop as a list of modules, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack = []

    def visit(node):
        colour[node] = GREY
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == GREY:
                return stack[stack.index(nxt):] + [nxt]
            if colour.get(nxt) == WHITE:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = BLACK
        return None

    for node in sorted(graph):
        if colour[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_loop():
    # Breakage caught: a module below the estimators importing the package
    # root or an estimator module (even inside a function), as persistence
    # once did to find the estimator classes.
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_loop_finder_finds_loops():
    # Guards the test above: a graph with a loop three modules long, found
    # through a function-level import, is reported.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_persistence_and_the_core_import_no_estimator():
    # Breakage caught: the core (persistence, the dictionary registry, the
    # training loop, the torch layers) reaching up to the estimators.
    graph = import_graph()
    estimators = {"skpred", "skpred._mlp", "skpred._conv", "skpred._rica", "skpred._image",
                  "skpred._dictionary", "skpred._base"}
    for core in ("skpred._persist", "skpred._kinds", "skpred._loop", "skpred._device",
                 "skpred._feeds", "skpred._optim", "skpred._pretrain", "skpred.nn._spec",
                 "skpred.callbacks", "skpred._stopping", "skpred._layers"):
        reached, todo = set(), [core]
        while todo:
            for nxt in graph[todo.pop()] - reached:
                reached.add(nxt)
                todo.append(nxt)
        assert not reached & estimators, (core, sorted(reached & estimators))
