"""Data loaders. Nothing is ever downloaded: full data sets are read from a
path the user gives, in their standard file formats."""

from ._mnist import load_mnist, read_idx

__all__ = ["load_mnist", "read_idx"]
