"""Data sets: synthetic generators and readers of the standard file layouts (see ``base.py``)."""

from lindy.data.base import DATASETS, DataSplits, TaskInfo, build_data, register_dataset

__all__ = ["DATASETS", "DataSplits", "TaskInfo", "build_data", "register_dataset"]
