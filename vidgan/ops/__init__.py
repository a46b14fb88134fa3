"""Operations that replace faces. One module per operation; all share masks and blending."""

from .base import Operation
from .blur import Blur
from .masks import MaskOptions
from .pixelate import Pixelate
from .solid import Solid, parse_color

OPERATIONS = {"blur": Blur, "pixelate": Pixelate, "solid": Solid}

__all__ = ["Operation", "Blur", "Pixelate", "Solid", "MaskOptions", "OPERATIONS", "parse_color"]
