"""Transforms (every one maps FIXED points to MOVING points, LPS mm): building,
composing and inverting them, transform files, mapping points, manual alignment and
resampling."""
