"""VTK rendering of a :class:`medviewer.core.document.Document` (no Qt here).

Views draw into a vtkRenderWindow given to them and follow the Document's events. World
coordinates: 2D views use their plane's (u, v) millimetres; the 3D view uses LPS millimetres.
Touch VTK on the GUI thread only.
"""
