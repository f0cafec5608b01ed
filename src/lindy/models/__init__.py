"""Backbones and heads: encoder -> residual blocks of any contract layer -> pooling -> decoder.

``SequenceModel`` (backbone.py) is the model every experiment trains; ``ResidualBlock`` and
``FeedForward`` (blocks.py) are its blocks; a head is a pooling (heads.py) + the linear decoder;
``build_model(model_cfg, info)`` (build.py) builds the model of a config for a data set.
"""

from lindy.models.backbone import SequenceModel
from lindy.models.blocks import FEEDFORWARDS, NORMS, FeedForward, ResidualBlock, SequenceBatchNorm, make_norm
from lindy.models.build import build_model
from lindy.models.heads import POOLINGS, TASK_POOLING, TASK_POOLINGS, SequencePooling

__all__ = [
    "FEEDFORWARDS",
    "NORMS",
    "POOLINGS",
    "TASK_POOLING",
    "TASK_POOLINGS",
    "FeedForward",
    "ResidualBlock",
    "SequenceBatchNorm",
    "SequenceModel",
    "SequencePooling",
    "build_model",
    "make_norm",
]
