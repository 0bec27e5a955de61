"""medviewer's built-in plugins. Each sub-package's ``__init__`` holds only its static manifest
(registered in pyproject.toml under [project.entry-points."medviewer.plugins"]); the
implementation lives in its ``impl`` module, imported only when the plugin runs."""
