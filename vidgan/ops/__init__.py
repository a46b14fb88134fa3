"""Operations that replace faces. One module per operation; all share masks and blending."""

from .base import Operation
from .blur import Blur
from .gan_face import GanFace
from .masks import MaskOptions
from .pixelate import Pixelate
from .solid import Solid, parse_color

OPERATIONS = {"blur": Blur, "pixelate": Pixelate, "solid": Solid, "gan": GanFace}

__all__ = ["Operation", "Blur", "GanFace", "Pixelate", "Solid", "MaskOptions", "OPERATIONS", "parse_color"]
