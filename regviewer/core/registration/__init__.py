"""The registration engine: parameters and presets, the stage runners, progress and
cancel, the symmetric mode, and headless and batch use."""
