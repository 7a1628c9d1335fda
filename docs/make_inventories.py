"""Write the intersphinx inventories the docs link through, without the internet.

Sphinx's intersphinx normally downloads each project's ``objects.inv``; the docs
must build offline, so these inventories are written here from the installed
packages (every public class and function of scikit-learn's public modules, of
``torch.nn``/``torch.optim``/``torch.utils.data``, a few numpy names, Python's
builtin types) with the URL scheme of each project's site, and committed in
``docs/_inventories``. Rerun after upgrading scikit-learn or torch::

    .venv/bin/python docs/make_inventories.py

``sphobjinv`` (in the ``docs`` extra) writes the files.
"""
import importlib
import inspect
import os

import sphobjinv as soi

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "_inventories")

# Sections of scikit-learn's user guide and glossary that its docstrings (which
# skpred's estimators inherit) point at with :ref: / :term:.
SKLEARN_LABELS = {
    "accuracy_score": "modules/model_evaluation.html#accuracy-score",
    "r2_score": "modules/model_evaluation.html#r2-score",
    "metadata_routing": "metadata_routing.html#metadata-routing",
    "df_output_transform": "auto_examples/miscellaneous/plot_set_output.html",
    "sphx_glr_auto_examples_miscellaneous_plot_set_output.py":
        "auto_examples/miscellaneous/plot_set_output.html",
    "glossary": "glossary.html#glossary",
}
SKLEARN_TERMS = ["array-like", "estimator", "fit", "predict", "predict_proba",
                 "random_state", "sample_weight", "n_jobs", "warm_start",
                 "early_stopping", "partial_fit", "transform", "sparse matrix",
                 "metadata routing", "classes_", "n_features_in_",
                 "feature_names_in_", "n_iter_", "cross-validation estimator"]

NUMPY = {
    "numpy.ndarray": "reference/generated/numpy.ndarray.html#numpy.ndarray",
    "numpy.dtype": "reference/generated/numpy.dtype.html#numpy.dtype",
    "numpy.float32": "reference/arrays.scalars.html#numpy.float32",
    "numpy.float64": "reference/arrays.scalars.html#numpy.float64",
    "numpy.random.RandomState": "reference/random/legacy.html#numpy.random.RandomState",
    "numpy.random.Generator": "reference/random/generator.html#numpy.random.Generator",
    "numpy.memmap": "reference/generated/numpy.memmap.html#numpy.memmap",
}

TORCH_PAGES = {  # names documented on a shared page, not a generated one
    "torch.Tensor": "tensors.html#torch.Tensor",
    "torch.device": "tensor_attributes.html#torch.device",
    "torch.dtype": "tensor_attributes.html#torch.dtype",
    "torch.optim.Optimizer": "optim.html#torch.optim.Optimizer",
    "torch.utils.data.DataLoader": "data.html#torch.utils.data.DataLoader",
    "torch.utils.data.Dataset": "data.html#torch.utils.data.Dataset",
    "torch.utils.data.TensorDataset": "data.html#torch.utils.data.TensorDataset",
    "torch.utils.data.DistributedSampler": "data.html#torch.utils.data.distributed.DistributedSampler",
}

PYTHON = {
    "int": ("class", "library/functions.html#int"),
    "float": ("class", "library/functions.html#float"),
    "bool": ("class", "library/functions.html#bool"),
    "str": ("class", "library/stdtypes.html#str"),
    "list": ("class", "library/stdtypes.html#list"),
    "tuple": ("class", "library/stdtypes.html#tuple"),
    "dict": ("class", "library/stdtypes.html#dict"),
    "object": ("class", "library/functions.html#object"),
    "callable": ("function", "library/functions.html#callable"),
    "None": ("data", "library/constants.html#None"),
    "KeyboardInterrupt": ("exception", "library/exceptions.html#KeyboardInterrupt"),
    "ValueError": ("exception", "library/exceptions.html#ValueError"),
}


def _public(module):
    names = getattr(module, "__all__", None)
    # without __all__, only what the module defines (not what it imports)
    own = names is None
    for name in names or [n for n in dir(module) if not n.startswith("_")]:
        try:
            obj = getattr(module, name, None)
        except ImportError:  # scikit-learn's experimental names need an enable_* import
            continue
        if own and not getattr(obj, "__module__", "").startswith(module.__name__):
            continue
        if inspect.isclass(obj):
            yield name, "exception" if issubclass(obj, BaseException) else "class"
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            yield name, "function"


def _inventory(project, version, entries):
    inv = soi.Inventory()
    inv.project, inv.version = project, version
    for name, domain, role, uri in entries:
        inv.objects.append(soi.DataObjStr(name=name, domain=domain, role=role,
                                          priority="1", uri=uri, dispname="-"))
    return inv


def _write(inv, filename):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, filename)
    soi.writebytes(path, soi.compress(inv.data_file(contract=True)))
    print(f"{path}: {len(inv.objects)} names")


def sklearn_entries():
    import sklearn

    out = []
    for sub in sklearn.__all__:
        try:
            module = importlib.import_module(f"sklearn.{sub}")
        except ImportError:
            continue
        if not inspect.ismodule(module) or sub in ("externals", "experimental"):
            continue
        for name, role in _public(module):
            full = f"sklearn.{sub}.{name}"
            out.append((full, "py", role, f"modules/generated/{full}.html#{full}"))
    out += [(k, "std", "label", v) for k, v in SKLEARN_LABELS.items()]
    out += [(t, "std", "term", "glossary.html#term-" + t.replace(" ", "-").replace("_", "-"))
            for t in SKLEARN_TERMS]
    return out


def torch_entries():
    out = [(k, "py", "class", v) for k, v in TORCH_PAGES.items()]
    seen = set(TORCH_PAGES)
    for modname in ("torch.nn", "torch.nn.functional", "torch.optim", "torch.optim.lr_scheduler"):
        module = importlib.import_module(modname)
        for name, role in _public(module):
            full = f"{modname}.{name}"
            if full not in seen:
                seen.add(full)
                out.append((full, "py", role, f"generated/{full}.html#{full}"))
    return out


def main():
    import numpy
    import sklearn
    import torch

    _write(_inventory("scikit-learn", sklearn.__version__, sklearn_entries()), "sklearn.inv")
    _write(_inventory("NumPy", numpy.__version__,
                      [(k, "py", "class", v) for k, v in NUMPY.items()]), "numpy.inv")
    _write(_inventory("PyTorch", torch.__version__.split("+")[0], torch_entries()), "torch.inv")
    _write(_inventory("Python", "3", [(k, "py", r, u) for k, (r, u) in PYTHON.items()]),
           "python.inv")


if __name__ == "__main__":
    main()
