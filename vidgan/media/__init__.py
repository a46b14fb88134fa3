"""Media I/O: streaming decode (reader) and faithful, atomic encode (writer)."""

from .reader import VideoReader, is_image_path, probe, read_frame
from .writer import EncodeOptions, VideoWriter, check_output_path, output_format_for, write_image

__all__ = ["VideoReader", "VideoWriter", "EncodeOptions", "probe", "read_frame", "is_image_path",
           "check_output_path", "output_format_for", "write_image"]
