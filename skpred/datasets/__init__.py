"""Data loaders. Nothing is ever downloaded: full data sets are read from a
path the user gives, in their standard file formats."""

from ._cifar_stl import load_cifar10, load_stl10
from ._mnist import load_mnist, read_idx

__all__ = ["load_mnist", "read_idx", "load_cifar10", "load_stl10"]
