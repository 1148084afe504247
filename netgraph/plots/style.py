"""One look for every figure: palette, method colours, fonts, and file writing.

Static figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``
rendered by Agg, no pyplot, no global backend switch) and written as PNG (and SVG
on request); interactive ones with plotly and written as HTML. HTML files load
plotly.js from one ``plotly.min.js`` (no internet needed, a few kB per figure):
next to them by default, or one per output tree (:func:`save_plotly`).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from netgraph.atomic import atomic_write, atomic_write_text

# Okabe & Ito (2008) colour-blind-safe palette (plus a few of Paul Tol's colours below).
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}

#: Fixed colour and marker per pruning method, the same in every figure (the
#: methods of ``netgraph.pruning.METHODS`` and the sweep's post-training ones).
METHOD_STYLE: dict[str, tuple[str, str]] = {
    "connect": (OKABE_ITO["vermillion"], "o"),
    "magnitude+l1+connect": ("#882255", "D"),  # L1 + CoNNect-regularised training, then magnitude
    "synflow": (OKABE_ITO["blue"], "s"),
    "magnitude": (OKABE_ITO["green"], "^"),
    "magnitude_layerwise": (OKABE_ITO["sky_blue"], "v"),
    "magnitude+l1": ("#999933", "P"),
    "imp": ("#332288", "*"),
    "snip": (OKABE_ITO["orange"], "<"),
    "grasp": (OKABE_ITO["purple"], ">"),
    "random": (OKABE_ITO["black"], "h"),
}
_ALIASES = {
    "connect_score": "connect", "connect-score": "connect",
    "connect_reg": "magnitude+l1+connect", "connect-reg": "magnitude+l1+connect",
    "connect_regularizer": "magnitude+l1+connect",
    "magnitude_global": "magnitude", "global_magnitude": "magnitude",
    "layerwise_magnitude": "magnitude_layerwise", "magnitude-layerwise": "magnitude_layerwise",
    "iterative_magnitude": "imp", "lottery": "imp", "lth": "imp",
}
_EXTRA_MARKERS = ["d", "p", "8", "H"]  # "X" is kept for "first collapse" markers
# Unknown methods: a stable (hashed) pick among colours far from the fixed ones above.
EXTRA_COLORS = ["#6699CC", "#661100", "#CC6677", "#888888", "#DDAA33"]

# Colours with a fixed meaning in the graph drawings.
ALIVE = OKABE_ITO["blue"]
DEAD = "#BBBBBB"
DEAD_EDGE = "#C8C8C8"
CUT = OKABE_ITO["vermillion"]
DENSE = "#555555"
ZERO_CELL = "#DDDDDD"

DPI = 150
WIDTH_IN = 9.0  # 9 in at 150 dpi: 1350 px, sharp when shown ~900 px wide
FONT = 10

MPL_STYLE: dict[str, Any] = {
    "font.size": FONT,
    "axes.titlesize": FONT + 1,
    "axes.labelsize": FONT,
    "xtick.labelsize": FONT - 1,
    "ytick.labelsize": FONT - 1,
    "legend.fontsize": FONT - 1,
    "legend.frameon": False,
    "figure.titlesize": FONT + 2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
    "savefig.dpi": DPI,
    "svg.fonttype": "none",
    "figure.facecolor": "white",
}

PLOTLY_FONT = {"family": "DejaVu Sans, Arial, sans-serif", "size": 13}


def method_key(method: str) -> str:
    key = str(method).strip().lower().replace(" ", "_")
    return _ALIASES.get(key, key)


def _known(method: str) -> str | None:
    """The METHOD_STYLE key of a method or of its longest known prefix ("synflow_iter" -> "synflow")."""
    key = method_key(method)
    if key in METHOD_STYLE:
        return key
    prefixes = [known for known in METHOD_STYLE if key.startswith(known)]
    return max(prefixes, key=len) if prefixes else None


def method_color(method: str) -> str:
    """The method's colour: fixed for known methods, a stable hash pick otherwise."""
    known = _known(method)
    if known is not None:
        return METHOD_STYLE[known][0]
    return EXTRA_COLORS[zlib.crc32(method_key(method).encode()) % len(EXTRA_COLORS)]


def method_marker(method: str) -> str:
    known = _known(method)
    if known is not None:
        return METHOD_STYLE[known][1]
    return _EXTRA_MARKERS[zlib.crc32(method_key(method).encode()) % len(_EXTRA_MARKERS)]


def sort_methods(methods: Iterable[str]) -> list[str]:
    """Known methods in a fixed order (so legends agree across figures), others after, by name."""
    order = {name: i for i, name in enumerate(METHOD_STYLE)}
    return sorted(set(methods), key=lambda m: (order.get(method_key(m), len(order)), str(m)))


def hex_to_rgba(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha:.3g})"


@contextmanager
def mpl_style():
    import matplotlib

    with matplotlib.rc_context(MPL_STYLE):
        yield


def new_figure(width: float = WIDTH_IN, height: float = 4.0):
    """A matplotlib Figure rendered by Agg (no pyplot state, safe headless)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def plotly_layout(title: str, width: int = 900, height: int = 450, **extra: Any) -> dict:
    layout = {
        "title": {"text": title, "x": 0.01, "xanchor": "left"},
        "template": "simple_white",
        "font": PLOTLY_FONT,
        "width": width,
        "height": height,
        "margin": {"l": 70, "r": 30, "t": 70, "b": 60},
        "legend": {"bgcolor": "rgba(255,255,255,0.7)"},
        "hoverlabel": {"namelength": -1},
    }
    layout.update(extra)
    return layout


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, cols) for ``n`` small multiples, at most ``max_cols`` wide, rows balanced."""
    n = max(n, 1)
    rows = math.ceil(n / max_cols)
    return rows, math.ceil(n / rows)


# --- writing -------------------------------------------------------------------


class Written(list):
    """The files a figure function wrote (a list of Paths, PNG first), plus
    ``info``: what was drawn (per-panel edge counts etc.)."""

    def __init__(self, paths: Iterable[Path] = (), info: dict | None = None) -> None:
        super().__init__(paths)
        self.info: dict = info or {}

    def by_suffix(self, suffix: str) -> list[Path]:
        return [p for p in self if p.suffix == suffix]


def _formats(formats: str | Sequence[str]) -> list[str]:
    if isinstance(formats, str):
        formats = [formats]
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad:
        raise ValueError(f"unsupported static format(s) {bad}: use png, svg or pdf")
    return list(dict.fromkeys(formats))


def save_mpl(fig, out_dir: Path, name: str, formats: str | Sequence[str] = ("png",)) -> list[Path]:
    paths = []
    for fmt in _formats(formats):
        target = out_dir / f"{name}.{fmt}"
        paths.append(atomic_write(target, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=DPI, facecolor="white")))
    return paths


PLOTLYJS_MODES = ("directory", "cdn", "embed")


def save_plotly(fig, out_dir: Path, name: str, plotlyjs: bool | str | os.PathLike = "directory") -> Path:
    """Write ``fig`` as ``out_dir/name.html``.

    ``plotlyjs``: ``'directory'`` (default) loads one ``plotly.min.js`` written
    once into ``out_dir``; a path to a ``.js`` file (e.g. one at the root of an
    output tree, see :func:`ensure_plotlyjs`) is written once there and loaded by
    a relative link, so a tree of figure folders holds one copy; ``'cdn'`` loads
    it from cdn.plot.ly (small files, needs internet to view); ``'embed'`` or
    ``True`` puts the ~4.7 MB bundle in the file."""
    html_path = out_dir / f"{name}.html"
    if plotlyjs is True or plotlyjs == "embed":
        include: bool | str = True
    elif plotlyjs == "cdn":
        include = "cdn"
    elif plotlyjs == "directory":
        ensure_plotlyjs(out_dir)
        include = "directory"
    elif isinstance(plotlyjs, (str, os.PathLike)) and str(plotlyjs).endswith(".js"):
        bundle = Path(plotlyjs)
        ensure_plotlyjs(bundle.parent, bundle.name)
        include = Path(os.path.relpath(bundle.resolve(), out_dir.resolve())).as_posix()
    else:
        raise ValueError(f"plotlyjs must be one of {', '.join(PLOTLYJS_MODES)} or a path to a .js file, "
                         f"got {plotlyjs!r}")
    html = fig.to_html(include_plotlyjs=include, full_html=True, config={"displaylogo": False, "responsive": True})
    return atomic_write_text(html_path, html)


def ensure_plotlyjs(out_dir: str | os.PathLike, name: str = "plotly.min.js") -> Path:
    """Write plotly.js (the version plotly.py ships) to ``out_dir/name`` once."""
    from plotly.offline import get_plotlyjs

    target = Path(out_dir) / name
    if not target.exists() or target.stat().st_size == 0:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, get_plotlyjs())
    return target


def write_figure(spec, out_dir: str | os.PathLike, formats: str | Sequence[str] = ("png",),
                 plotlyjs: bool | str | os.PathLike = "directory") -> Written:
    """Render a :class:`~netgraph.plots.spec.FigureSpec` with both backends into
    ``out_dir/<spec.name>.{png,...,html}``; ``.info`` is the spec's info plus the spec itself."""
    from netgraph.plots.render_mpl import to_matplotlib
    from netgraph.plots.render_plotly import to_plotly

    out = prepare_out_dir(out_dir)
    paths = save_mpl(to_matplotlib(spec), out, spec.name, formats)
    paths.append(save_plotly(to_plotly(spec), out, spec.name, plotlyjs))
    return Written(paths, {**spec.info, "spec": spec})


def prepare_out_dir(out_dir: str | os.PathLike) -> Path:
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path
