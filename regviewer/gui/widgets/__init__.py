"""Widgets that docks embed (the parameter editor, the metric plot): panels may import these,
never each other."""
