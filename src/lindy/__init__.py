"""lindy: long-sequence models built on linear dynamics (LSSL, S4D, LDNN, STU, LEM, SDN/SpikingSSM)."""

__version__ = "0.1.0"
