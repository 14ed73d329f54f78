"""regviewer's Qt views and controllers over `regviewer.core`. No numerics here."""
