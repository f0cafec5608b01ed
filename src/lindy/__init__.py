"""lindy: long-sequence models built on linear dynamics (LSSL, S4D, LDNN, STU, LEM, SDN/SpikingSSM)."""

__version__ = "0.1.0"


def load_pretrained(path, device="cpu"):
    """Load a model exported by ``lindy export`` (model.safetensors + config.json)."""
    from lindy.pretrained import load_pretrained as _load

    return _load(path, device)
