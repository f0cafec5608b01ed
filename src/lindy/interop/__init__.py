"""Load the reference implementations' weights into lindy modules with the same outputs."""

from lindy.interop.ldnn import ldnn_from_reference
from lindy.interop.lem import LEMReadout, lem_from_reference
from lindy.interop.s4d import s4d_from_reference
from lindy.interop.sdn import sdn_from_reference, spikingssm_from_reference
from lindy.interop.stu import stu_from_flash_stu, stu_from_spectral_ssm

__all__ = [
    "LEMReadout",
    "ldnn_from_reference",
    "lem_from_reference",
    "s4d_from_reference",
    "sdn_from_reference",
    "spikingssm_from_reference",
    "stu_from_flash_stu",
    "stu_from_spectral_ssm",
]
