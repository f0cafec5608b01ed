"""Sequence layers, each with a parallel mode and a recurrent mode (see ``base.py`` for the contract)."""

from lindy.layers.base import LAYERS, SequenceLayer, build_layer, register_layer, register_ssm_param

__all__ = ["LAYERS", "SequenceLayer", "build_layer", "register_layer", "register_ssm_param"]
