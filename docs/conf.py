"""Sphinx configuration for skpred's documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import skpred  # noqa: E402

project = "skpred"
author = "skpred developers"
copyright = "2026, skpred developers"
release = version = skpred.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    # MathJax served from the built site (copied into _static/mathjax), so
    # the math renders without the internet
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",  # the Markdown pages (benchmarks, overview, development)
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# Markdown headings up to level 2 get GitHub's anchors, so links such as
# authors_settings.md#ablation-... work on the site as on GitHub.
myst_heading_anchors = 2
autosummary_generate = True
numpydoc_show_class_members = False
# Links into scikit-learn's, numpy's, PyTorch's and Python's documentation
# through inventories committed in _inventories (written from the installed
# packages by make_inventories.py), so the build needs no network.
intersphinx_mapping = {
    name: (url, os.path.join("_inventories", f"{name}.inv"))
    for name, url in {
        "sklearn": "https://scikit-learn.org/stable/",
        "numpy": "https://numpy.org/doc/stable/",
        "torch": "https://docs.pytorch.org/docs/stable/",
        "python": "https://docs.python.org/3/",
    }.items()
}
# Parameter types in docstrings link to those pages; words that are not
# listed here (shape, default=...) stay text.
numpydoc_xref_param_type = True
numpydoc_xref_ignore = "all"
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "RandomState": "numpy.random.RandomState",
    "array-like": ":term:`array-like <sklearn:array-like>`",
    "torch.device": "torch.device",
    "tensor": "torch.Tensor",
    "Tensor": "torch.Tensor",
    "nn.Module": "torch.nn.Module",
    "DataLoader": "torch.utils.data.DataLoader",
    "int": "int", "float": "float", "bool": "bool", "str": "str", "dict": "dict",
    "list": "list", "tuple": "tuple", "callable": "callable", "None": "None",
    "KernelDictionary": "skpred.KernelDictionary",
}
numpydoc_class_members_toctree = False
exclude_patterns = ["_build"]
# sphinx-gallery warns when the *absolute* path of an example holds a space,
# which a checkout folder may ("my skpred/skpred"); the example files' own
# names have none, and the links it builds are relative to the docs.
suppress_warnings = ["sphinx_gallery.space_in_filename"]
templates_path = ["_templates"]
# furo: a column wide enough for code, code blocks that scroll rather than
# cut lines, and a dark mode
html_theme = "furo"
html_static_path = []

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "ignore_pattern": r"notebooks",
    "download_all_examples": False,
    "remove_config_comments": True,
    # each API page lists the gallery examples that use its object
    "backreferences_dir": "generated/backreferences",
    "doc_module": ("skpred",),
    "reference_url": {"skpred": None},
}
# SKPRED_DOCS_NO_GALLERY_RUN=1 builds the gallery pages without running the
# examples (the tests run them); CI runs them.
if os.environ.get("SKPRED_DOCS_NO_GALLERY_RUN"):
    sphinx_gallery_conf["plot_gallery"] = "False"
