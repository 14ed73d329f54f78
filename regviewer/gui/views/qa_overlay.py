"""What the QA dock draws in the host's slice views: the Jacobian colour overlay and the
deformation grid, one pyqtgraph item of each per view, redrawn when a view changes slice.

Each view's `view_box` is in plane pixel units (x = col, y = row); the Jacobian map
(on the fixed grid) is resliced on the view's plane at its depth (`slicing.reslice`,
a few milliseconds per slice) and coloured by `qa.jacobian_rgba`; the grid comes from
`core.grid.warped_grid_lines` under the evaluated fixed → moving transform.
"""

from __future__ import annotations

import weakref

import pyqtgraph as pg

from regviewer.core.imaging.slicing import reslice


class QAOverlays:
    """Jacobian ImageItems and grid items in every slice view of `host`."""

    def __init__(self, host) -> None:
        self.host = host
        self.evaluation = None  # core.qa.Evaluation being shown
        self.log2_range = 1.0
        self.show_jacobian = False
        self.show_grid = False
        self.opacity = 0.7
        self.grid_spacing_mm = 10.0
        self._images: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._grids: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._connected: weakref.WeakSet = weakref.WeakSet()

    def views(self) -> list:
        """The host's slice views, each connected once to redraw on slice changes."""
        views = list(self.host.slice_views())
        for view in views:
            if view not in self._connected and hasattr(view, "sliceChanged"):
                ref = weakref.ref(view)
                view.sliceChanged.connect(lambda ref=ref: self._on_slice_changed(ref()))
                self._connected.add(view)
        return views

    def refresh(self) -> None:
        for view in self.views():
            self.draw(view)

    def hide_all(self) -> None:
        for item in list(self._images.values()):
            item.setVisible(False)
        for grid in list(self._grids.values()):
            grid.set_visible(False)

    def _on_slice_changed(self, view) -> None:
        if view is not None:
            self.draw(view)

    def draw(self, view) -> None:
        self._draw_jacobian(view)
        self._draw_grid(view)

    # --- Jacobian colours ------------------------------------------------------------------
    def image_item(self, view) -> pg.ImageItem:
        item = self._images.get(view)
        if item is None:
            item = pg.ImageItem(axisOrder="row-major")
            item.setPos(-0.5, -0.5)  # pixel centres at integer (col, row), as the slice image
            item.setZValue(5)  # above the image, below the crosshair (10) and markers
            view.view_box.addItem(item, ignoreBounds=True)
            self._images[view] = item
        return item

    def _draw_jacobian(self, view) -> None:
        if not (self.show_jacobian and self.evaluation is not None):
            if view in self._images:
                self._images[view].setVisible(False)
            return
        from regviewer.core.qa.jacobian_colours import jacobian_rgba

        values = reslice(self.evaluation.jacobian, view.plane, view.depth, interpolator="nearest", default_value=1.0)
        rgba = jacobian_rgba(values, self.log2_range, max_alpha=int(round(255 * self.opacity)))
        item = self.image_item(view)
        item.setImage(rgba, autoLevels=False, levels=(0, 255))
        item.setVisible(True)

    # --- deformation grid ------------------------------------------------------------------
    def grid_item(self, view):
        return self._grids.get(view)

    def _draw_grid(self, view) -> None:
        grid = self._grids.get(view)
        if not (self.show_grid and self.evaluation is not None):
            if grid is not None:
                grid.set_visible(False)
            return
        from regviewer.core.imaging.grid import warped_grid_lines
        from regviewer.gui.views.grid_item import DeformationGridItem  # the live panel's item, shared

        lines = warped_grid_lines(self.evaluation.transform, view.plane, view.depth, spacing_mm=self.grid_spacing_mm)
        if grid is None:
            grid = DeformationGridItem(view.view_box)
            self._grids[view] = grid
        grid.set_lines(lines)
        grid.set_visible(True)
