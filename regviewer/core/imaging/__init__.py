"""Images and what is drawn from them: the Volume model, image files, display planes,
compositing, deformation-grid geometry and synthetic test pairs."""
