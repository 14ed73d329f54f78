"""regviewer: interactive image registration.

``regviewer.register(fixed, moving)`` (preset ``"auto"``, chosen from the images) runs the registration
engine from Python; ``regviewer`` on the command line opens the window.
"""

from __future__ import annotations

__version__ = "0.1.0"


def register(*args, cancel=None, **kwargs):
    """Register `moving` onto `fixed`; see `regviewer.core.registration.engine.register`.

    With a `cancel` token the run goes on a worker thread (so `progress` is called from it) and a
    cancel returns within about two seconds even inside one long ITK filter, which checks no token:
    the run then raises `RegistrationCancelled` with ``abandoned = True`` and its thread is left to
    finish on its own.
    """
    from regviewer.core.registration.engine import register as _register

    if cancel is None:
        return _register(*args, **kwargs)
    from regviewer.core.registration.headless import abandonable

    return abandonable(lambda: _register(*args, cancel=cancel, **kwargs), cancel)


def align_stack(*args, **kwargs):
    """Align serial 2D sections into a volume; see `regviewer.core.stack.align.align_stack`."""
    from regviewer.core.stack.align import align_stack as _align_stack

    return _align_stack(*args, **kwargs)


__all__ = ["register", "align_stack", "__version__"]
