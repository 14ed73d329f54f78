"""The application model: what a person is working on, its undo history, sessions,
run history and view state."""
