"""Backbones and heads: encoder -> residual blocks of any contract layer -> pooling -> decoder."""

from lindy.models.backbone import SequenceModel
from lindy.models.blocks import FeedForward, ResidualBlock
from lindy.models.build import TASK_POOLING, build_model

__all__ = ["FeedForward", "ResidualBlock", "SequenceModel", "TASK_POOLING", "build_model"]
