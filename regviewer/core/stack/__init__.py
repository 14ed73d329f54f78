"""Serial sections: align a stack of 2D sections into a volume (see `align.align_stack`)."""

from regviewer.core.stack.align import StackProgress, align_stack
from regviewer.core.stack.result import SectionResult, StackResult

__all__ = ["align_stack", "StackProgress", "StackResult", "SectionResult"]
