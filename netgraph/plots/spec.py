"""A backend-neutral description of a figure: what is drawn, computed once.

Every figure of :mod:`netgraph.plots` is built in two steps: a pure function
turns results (records, graphs, reports) into a :class:`FigureSpec` (panels of
marks in data coordinates, with labels, colours, markers and notes), then
:mod:`~netgraph.plots.render_mpl` and :mod:`~netgraph.plots.render_plotly` draw
that same description as PNG/SVG and as interactive HTML. So a figure's content
(which series, which points are marked collapsed or disconnected, what the axes
say) is tested on the description, and the two outputs cannot disagree.

Markers use matplotlib's codes (``"o"``, ``"s"``, ``"X"``, ...) plus
``"circle-x"`` (a ring with a cross, for disconnected networks); line styles are
``solid``, ``dashed``, ``dotted``, ``dashdot`` or ``none``. Everything is in data
coordinates: a spec function that pins markers to an axis edge computes the
axis limits itself, so both renderers put them at the same place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Line:
    """A series: markers and/or a polyline, optionally a ±band. ``role`` says what
    it is (``mean``, ``before``, ``dense``, ``collapse``, ``disconnected``,
    ``run``, ``reference``, ...) so tests can find it."""

    x: Sequence[float]
    y: Sequence[float]
    name: str = ""
    role: str = "series"
    color: str = "#000000"
    marker: str | None = None
    linestyle: str = "solid"
    linewidth: float = 1.6
    markersize: float = 5.0
    hollow: bool = False
    alpha: float = 1.0
    band: tuple[Sequence[float], Sequence[float]] | None = None
    hover: Sequence[str] | None = None
    group: str | None = None  # legend group (the method) for the interactive figure


@dataclass
class HLine:
    """A horizontal reference line across the panel, labelled at its right end."""

    y: float
    name: str
    role: str = "reference"
    color: str = "#555555"
    linestyle: str = "solid"
    linewidth: float = 1.2
    text: str = ""


@dataclass
class Segments:
    """Many straight segments (graph edges) in one colour, one width and opacity."""

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    name: str = ""
    role: str = "edges"
    color: str = "#000000"
    linewidth: float = 0.5
    alpha: float = 1.0

    def __len__(self) -> int:
        return len(self.x0)


@dataclass
class Points:
    """Scatter points sharing a look; ``size`` is the marker diameter in points."""

    x: np.ndarray
    y: np.ndarray
    name: str = ""
    role: str = "points"
    color: str = "#000000"
    edgecolor: str | None = None
    marker: str = "o"
    size: float | np.ndarray = 4.0
    hollow: bool = False
    hover: Sequence[str] | None = None

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Span:
    """A shaded band, vertical (``axis='x'``: from x0 to x1 over the full height)
    or horizontal (``axis='y'``), with an optional label inside it."""

    start: float
    stop: float
    axis: str = "x"
    name: str = ""
    role: str = "span"
    color: str = "#F0F0F0"
    alpha: float = 1.0
    text: str = ""
    text_color: str = "#777777"


@dataclass
class Text:
    """A label at data coordinates (``x``/``y``); ``x=None`` means the panel's right edge."""

    x: float | None
    y: float
    text: str
    color: str = "#333333"
    size: float = 8.0
    ha: str = "left"
    va: str = "center"
    role: str = "text"


@dataclass
class Heatmap:
    """A grid of values (rows x columns) on a log colour scale; NaN cells are
    empty, zero cells grey with a cross."""

    z: np.ndarray
    x_labels: list[str]
    y_labels: list[str]
    vmin: float
    vmax: float = 1.0
    colorbar: str = ""
    zero_color: str = "#DDDDDD"
    zero_mark: str = "#D55E00"
    role: str = "heatmap"


@dataclass
class Image:
    """An image of values in [0, ``vmax``] (e.g. input pixels), coloured from
    ``low`` (0) to ``high`` (``vmax``); row 0 at the top."""

    pixels: np.ndarray
    vmax: float = 1.0
    low: str = "#FFFFFF"
    high: str = "#0072B2"
    colorbar: str = ""
    role: str = "image"


Mark = Line | HLine | Segments | Points | Span | Text | Heatmap | Image


@dataclass
class Panel:
    """One axes: its marks, labels, scales and limits, and notes printed inside it."""

    title: str = ""
    subtitle: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xlog: bool = False
    ylog: bool = False
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    xticks: tuple[list[float], list[str]] | None = None
    yticks: tuple[list[float], list[str]] | None = None
    xtick_rotation: float = 0.0
    yreverse: bool = False
    grid: bool = True
    marks: list[Mark] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title_color: str = "#000000"
    hide_yaxis: bool = False

    def add(self, *marks: Mark) -> None:
        self.marks.extend(marks)

    def find(self, kind: type | None = None, role: str | None = None, name: str | None = None) -> list[Any]:
        """Marks of a type and/or role and/or name (for tests and renderers)."""
        return [m for m in self.marks if (kind is None or isinstance(m, kind))
                and (role is None or getattr(m, "role", None) == role)
                and (name is None or getattr(m, "name", None) == name)]


@dataclass
class LegendEntry:
    """One legend item: a line and/or marker, or a filled patch (``patch=True``)."""

    label: str
    color: str
    marker: str | None = None
    linestyle: str = "solid"
    hollow: bool = False
    patch: bool = False
    edgecolor: str | None = None
    linewidth: float = 1.6
    alpha: float = 1.0


@dataclass
class FigureSpec:
    """A whole figure: panels on a grid (``cols`` per row), a title and subtitle,
    one legend below and footnotes; ``info`` holds what tests and callers read
    (counts drawn, layers, levels)."""

    name: str
    title: str
    panels: list[Panel]
    subtitle: str = ""
    cols: int = 0  # 0: all panels on one row
    legend: list[LegendEntry] = field(default_factory=list)
    legend_cols: int = 0
    notes: list[str] = field(default_factory=list)
    width_in: float = 9.0
    height_in: float = 4.0
    sharey: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def grid(self) -> tuple[int, int]:
        n = max(len(self.panels), 1)
        cols = min(self.cols or n, n)
        return -(-n // cols), cols

    def marks(self, kind: type | None = None, role: str | None = None) -> Iterator[tuple[Panel, Any]]:
        for panel in self.panels:
            for mark in panel.find(kind, role):
                yield panel, mark

    def legend_labels(self) -> list[str]:
        return [entry.label for entry in self.legend]


__all__ = ["FigureSpec", "HLine", "Heatmap", "Image", "LegendEntry", "Line", "Mark", "Panel", "Points", "Segments",
           "Span", "Text"]
