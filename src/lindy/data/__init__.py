"""Data sets: synthetic generators and readers of the standard file layouts (see ``base.py``).

Importing this package registers every data set under its name (``build_data("smnist", root=...)``).
"""

from lindy.data import (  # noqa: F401  (registration)
    adding,
    cifar,
    fhn,
    lds,
    lif,
    listops,
    lra_text,
    mnist,
    pathfinder,
    recall,
    speech_commands,
    text,
    uea,
)
from lindy.data.base import DATASETS, DataSplits, TaskInfo, build_data, register_dataset

__all__ = ["DATASETS", "DataSplits", "TaskInfo", "build_data", "register_dataset"]
