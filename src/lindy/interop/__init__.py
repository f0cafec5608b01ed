"""Load the reference implementations' weights into lindy modules with the same outputs."""

from lindy.interop.s4d import s4d_from_reference

__all__ = ["s4d_from_reference"]
