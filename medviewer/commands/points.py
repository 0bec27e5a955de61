"""Points given on the command line: ``X,Y,Z`` in patient LPS millimetres."""

from __future__ import annotations


def parse_point(text: str) -> tuple[float, float, float]:
    """``"X,Y,Z"`` (commas or semicolons, spaces allowed) -> (x, y, z); ValueError saying what
    is expected otherwise."""
    try:
        values = tuple(float(v) for v in text.replace(" ", "").replace(";", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise ValueError(f"a point is three numbers X,Y,Z in mm, got {text!r}")
    return values  # type: ignore[return-value]
