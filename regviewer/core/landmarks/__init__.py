"""Landmark pairs (fixed point -> moving point, LPS mm): the model, fits with
per-landmark error, and the file formats people already have.

The names below are the public API (`from regviewer.core.landmarks import fit`).
"""

from regviewer.core.landmarks.errors import landmark_errors
from regviewer.core.landmarks.fitting import LandmarkFit, fit
from regviewer.core.landmarks.model import LandmarkPair, LandmarkSet, load_landmarks

__all__ = ["LandmarkFit", "LandmarkPair", "LandmarkSet", "fit", "landmark_errors", "load_landmarks"]
