"""An ITK exception from a registration stage, in words a user can act on."""

from __future__ import annotations

from regviewer.core.registration.params import Stage


def explain_failure(stage: Stage, exc: Exception, name: str) -> str:
    """An ITK exception in words a user can act on."""
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    detail = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("description:")),
                  lines[-1] if lines else "unknown error")
    low = text.lower()
    if "too many samples map outside" in low or "all the points mapped to outside" in low or "valid points" in low:
        return (f"Stage '{name}' failed: the images hardly overlap under the current transform, so the "
                f"{stage.metric.kind} metric cannot be computed. Start from a better alignment (initializer "
                "'moments', landmarks or a manual alignment) or use a coarser pyramid. (ITK: {detail})"
                ).replace("{detail}", detail[:200])
    if "size of scales" in low:
        return f"Stage '{name}' failed: the optimiser scales do not match the transform ({detail[:200]})"
    return f"Stage '{name}' failed: {detail[:300]}"


__all__ = ["explain_failure"]
