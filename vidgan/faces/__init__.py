"""Faces: MTCNN detection and tracking."""

from .detector import DetectorOptions, FaceDetector, resolve_device, warm_up
from .tracker import Tracker, TrackerOptions

__all__ = ["DetectorOptions", "FaceDetector", "resolve_device", "warm_up", "Tracker", "TrackerOptions"]
