"""regviewer: interactive image registration.

``regviewer.register(fixed, moving)`` (preset ``"auto"``, chosen from the images) runs the registration
engine from Python; ``regviewer`` on the command line opens the window.
"""

from __future__ import annotations

__version__ = "0.1.0"


def register(*args, **kwargs):
    """Register `moving` onto `fixed`; see `regviewer.core.registration.engine.register`."""
    from regviewer.core.registration.engine import register as _register

    return _register(*args, **kwargs)


def align_stack(*args, **kwargs):
    """Align serial 2D sections into a volume; see `regviewer.core.stack.align.align_stack`."""
    from regviewer.core.stack.align import align_stack as _align_stack

    return _align_stack(*args, **kwargs)


__all__ = ["register", "align_stack", "__version__"]
