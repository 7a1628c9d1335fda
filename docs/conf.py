"""Sphinx configuration for skpred's documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import skpred  # noqa: E402

project = "skpred"
author = "skpred developers"
release = version = skpred.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
exclude_patterns = ["_build"]
templates_path = ["_templates"]
html_theme = "alabaster"
html_static_path = []

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "ignore_pattern": r"notebooks",
    "download_all_examples": False,
    "remove_config_comments": True,
}
# SKPRED_DOCS_NO_GALLERY_RUN=1 builds the gallery pages without running the
# examples (the tests run them); CI runs them.
if os.environ.get("SKPRED_DOCS_NO_GALLERY_RUN"):
    sphinx_gallery_conf["plot_gallery"] = "False"
