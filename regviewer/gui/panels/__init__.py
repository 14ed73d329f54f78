"""The docks beside the views: manual alignment, landmarks, live registration, QA."""
