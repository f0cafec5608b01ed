"""Load the reference implementations' weights into lindy modules with the same outputs."""

from lindy.interop.lem import LEMReadout, lem_from_reference
from lindy.interop.s4d import s4d_from_reference

__all__ = ["LEMReadout", "lem_from_reference", "s4d_from_reference"]
