"""Sequence layers, each with a parallel mode and a recurrent mode (see ``base.py`` for the contract).

Importing this package registers every layer under its lower-case name (``build_layer("s4d", 64)``).
"""

from lindy.layers.base import LAYERS, SequenceLayer, build_layer, register_layer, register_ssm_param
from lindy.layers.ldnn import LDNN
from lindy.layers.lem import LEM
from lindy.layers.lssl import LSSL
from lindy.layers.s4d import S4D
from lindy.layers.sdn import SDN, SDNNeuron
from lindy.layers.spiking_ssm import SpikingSSM
from lindy.layers.stu import STU

__all__ = [
    "LAYERS",
    "LDNN",
    "LEM",
    "LSSL",
    "S4D",
    "SDN",
    "SDNNeuron",
    "SpikingSSM",
    "STU",
    "SequenceLayer",
    "build_layer",
    "register_layer",
    "register_ssm_param",
]
