"""What a 2D slice view draws over its resliced image, one module per kind of overlay (as napari
keeps one visual per layer type): label layers (:mod:`.labels`), boxes and measurements
(:mod:`.shapes`), the corner annotations, orientation letters and scale bar (:mod:`.corners`).
Each is given its :class:`~medviewer.render.slice_view.SliceView` and reads the view's plane and
grid from it; the view owns the reslice pipeline, the camera and the Document's events."""
