"""What the window draws: slice views, the 3D view and the items laid over them."""
