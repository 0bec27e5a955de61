"""medviewer: a desktop CT viewer with click-to-segment and AI plugins."""

__version__ = "0.1.0"
