"""The serial-section (stack) window."""
