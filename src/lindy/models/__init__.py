"""Backbones and heads: encoder -> residual blocks of any contract layer -> pooling -> decoder.

``SequenceModel`` (backbone.py) is the model every experiment trains; ``ResidualBlock`` and
``FeedForward`` (blocks.py) are its blocks; a head is a pooling (heads.py) + the linear decoder;
``build_model(model_cfg, info)`` (build.py) builds the model of a config for a data set; its ``kind``
picks the model (``MODEL_KINDS``: "sequence", or "sdn" for the bare ``SDNModel`` of sdn.py).
"""

from lindy.models.backbone import SequenceModel
from lindy.models.blocks import FEEDFORWARDS, NORMS, FeedForward, ResidualBlock, SequenceBatchNorm, make_norm
from lindy.models.build import MODEL_KINDS, build_model
from lindy.models.heads import POOLINGS, TASK_POOLING, TASK_POOLINGS, SequencePooling
from lindy.models.sdn import SDNModel

__all__ = [
    "FEEDFORWARDS",
    "MODEL_KINDS",
    "NORMS",
    "POOLINGS",
    "TASK_POOLING",
    "TASK_POOLINGS",
    "FeedForward",
    "ResidualBlock",
    "SDNModel",
    "SequenceBatchNorm",
    "SequenceModel",
    "SequencePooling",
    "build_model",
    "make_norm",
]
