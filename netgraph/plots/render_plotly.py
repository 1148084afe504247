"""Draw a :class:`~netgraph.plots.spec.FigureSpec` with plotly (interactive HTML).

Like :mod:`~netgraph.plots.render_mpl`, it adds nothing to the description. The
legend is the spec's legend (legend-only traces); series of one method share a
legend group, so clicking a method in the legend hides all its traces.
"""

from __future__ import annotations

import re

import numpy as np

from netgraph.plots.spec import (
    FigureSpec,
    Heatmap,
    HLine,
    Image,
    LegendEntry,
    Line,
    Panel,
    Points,
    Segments,
    Span,
    Text,
)
from netgraph.plots.style import hex_to_rgba, plotly_layout

_DASH = {"solid": "solid", "dashed": "dash", "dotted": "dot", "dashdot": "dashdot", "none": "solid"}
_SYMBOLS = {"o": "circle", "D": "diamond", "s": "square", "^": "triangle-up", "v": "triangle-down", "P": "cross",
            "<": "triangle-left", ">": "triangle-right", "h": "hexagon", "X": "x", "x": "x-thin", "d": "diamond-tall",
            "p": "pentagon", "*": "star", "8": "octagon", "H": "hexagon2", "circle-x": "circle-x-open", None: "circle"}


def symbol(code: str | None, hollow: bool = False) -> str:
    """The plotly marker symbol of a spec marker code."""
    name = _SYMBOLS.get(code, "circle")
    return name + "-open" if hollow and not name.endswith("-open") and code != "x" else name


def html_text(text: str) -> str:
    """Spec text as plotly HTML: ``10^1.5`` as a superscript, newlines as breaks."""
    return re.sub(r"10\^([-+]?[\d.]+)", r"10<sup>\1</sup>", text).replace("\n", "<br>")


def _floats(values) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, float)]


def _axis_refs(index: int) -> tuple[str, str]:
    suffix = "" if index == 0 else str(index + 1)
    return f"x{suffix}", f"y{suffix}"


def _segments_xy(mark: Segments) -> tuple[np.ndarray, np.ndarray]:
    nan = np.full(len(mark), np.nan)
    x = np.stack([mark.x0, mark.x1, nan], 1).ravel().astype(np.float32)
    y = np.stack([mark.y0, mark.y1, nan], 1).ravel().astype(np.float32)
    return x, y


def _traces(panel: Panel) -> list[dict]:
    traces: list[dict] = []
    for mark in panel.marks:
        if isinstance(mark, Line):
            mode = ("lines" if mark.linestyle != "none" else "") + ("+markers" if mark.marker else "")
            trace = {"type": "scatter", "x": _floats(mark.x), "y": _floats(mark.y), "mode": mode.strip("+") or "lines",
                         "name": mark.name, "legendgroup": mark.group or mark.name, "showlegend": False, "opacity": mark.alpha,
                         "line": {"color": mark.color, "dash": _DASH[mark.linestyle], "width": mark.linewidth},
                         "marker": {"symbol": symbol(mark.marker, mark.hollow), "size": mark.markersize + 3,
                                     "color": mark.color, "line": {"color": mark.color, "width": 1.5}},
                         "cliponaxis": False}
            if mark.hover is not None:
                trace.update(text=list(mark.hover), hovertemplate="%{text}<extra></extra>")
            if mark.band is not None:
                lo, hi = (np.asarray(v, float) for v in mark.band)
                trace["error_y"] = {"type": "data", "symmetric": False, "array": _floats(hi - np.asarray(mark.y, float)),
                                        "arrayminus": _floats(np.asarray(mark.y, float) - lo), "thickness": 1, "width": 3,
                                        "color": hex_to_rgba(mark.color, 0.6)}
            traces.append(trace)
        elif isinstance(mark, Segments) and len(mark):
            x, y = _segments_xy(mark)
            traces.append({"type": "scatter", "x": x, "y": y, "mode": "lines", "name": mark.name, "hoverinfo": "skip",
                               "showlegend": False, "line": {"color": hex_to_rgba(mark.color, mark.alpha),
                                                           "width": max(mark.linewidth * 1.3, 0.5)}})
        elif isinstance(mark, Points) and len(mark):
            size = np.clip(np.asarray(mark.size, float) * 1.3, 2.0, 14.0)
            trace = {"type": "scatter", "x": np.asarray(mark.x, np.float32), "y": np.asarray(mark.y, np.float32),
                         "mode": "markers", "name": mark.name, "showlegend": False,
                         "marker": {"size": size if size.ndim else float(size), "symbol": symbol(mark.marker, mark.hollow),
                                     "color": mark.color, "line": {"color": mark.edgecolor or mark.color, "width": 1}}}
            if mark.hover is not None:
                trace.update(text=list(mark.hover), hovertemplate="%{text}<extra></extra>")
            else:
                trace["hoverinfo"] = "skip"
            traces.append(trace)
        elif isinstance(mark, Heatmap):
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(mark.z > 0, np.log10(np.maximum(mark.z, mark.vmin)), np.nan)
            text = [["no data" if np.isnan(v) else "0" if v == 0 else f"{v:.3g}" for v in row] for row in mark.z]
            low = int(np.floor(np.log10(mark.vmin)))
            traces.append({"type": "heatmap", "z": z, "x": mark.x_labels, "y": mark.y_labels, "zmin": np.log10(mark.vmin),
                               "zmax": np.log10(mark.vmax), "colorscale": "Viridis", "text": text, "showscale": bool(mark.colorbar),
                               "hovertemplate": "%{y} at %{x}: %{text}<extra></extra>",
                               "colorbar": {"title": {"text": mark.colorbar, "side": "right"},
                                             "tickvals": list(range(low, 1)),
                                             "ticktext": [f"{10.0**e:g}" for e in range(low, 1)]}})
            zi, zj = np.nonzero(mark.z == 0)
            if len(zi):
                traces.append({"type": "scatter", "x": [mark.x_labels[j] for j in zj], "y": [mark.y_labels[i] for i in zi],
                                   "mode": "markers", "showlegend": False, "hoverinfo": "skip",
                                   "marker": {"symbol": "x", "size": 7, "color": mark.zero_mark}})
        elif isinstance(mark, Image):
            traces.append({"type": "heatmap", "z": np.asarray(mark.pixels, float), "zmin": 0, "zmax": mark.vmax,
                               "colorscale": [[0, mark.low], [1, mark.high]],
                               "colorbar": {"title": {"text": mark.colorbar.replace("\n", "<br>"), "side": "right"}},
                               "hovertemplate": "pixel (%{y}, %{x}): %{z:.2f}<extra></extra>"})
    return traces


def _decorations(panel: Panel, index: int) -> tuple[list[dict], list[dict]]:
    xref, yref = _axis_refs(index)
    shapes, notes = [], []
    for mark in panel.marks:
        if isinstance(mark, Span):
            if mark.axis == "x":
                shapes.append({"type": "rect", "xref": xref, "yref": f"{yref} domain", "x0": mark.start, "x1": mark.stop, "y0": 0,
                                   "y1": 1, "fillcolor": hex_to_rgba(mark.color, mark.alpha), "line": {"width": 0},
                                   "layer": "below"})
                if mark.text:
                    notes.append({"x": (mark.start + mark.stop) / 2, "y": 1, "xref": xref, "yref": f"{yref} domain",
                                      "text": f"<b>{mark.text}</b>", "showarrow": False, "textangle": -90, "yanchor": "top",
                                      "font": {"color": mark.text_color, "size": 11}})
            else:
                shapes.append({"type": "rect", "xref": f"{xref} domain", "yref": yref, "x0": 0, "x1": 1, "y0": mark.start,
                                   "y1": mark.stop, "fillcolor": hex_to_rgba(mark.color, mark.alpha), "line": {"width": 0},
                                   "layer": "below"})
                if mark.text:
                    notes.append({"x": 0.01, "y": (mark.start + mark.stop) / 2, "xref": f"{xref} domain", "yref": yref,
                                      "text": mark.text, "showarrow": False, "xanchor": "left",
                                      "font": {"color": mark.text_color, "size": 10}})
        elif isinstance(mark, HLine):
            shapes.append({"type": "line", "xref": f"{xref} domain", "yref": yref, "x0": 0, "x1": 1, "y0": mark.y, "y1": mark.y,
                               "line": {"color": mark.color, "dash": _DASH[mark.linestyle], "width": mark.linewidth}})
        elif isinstance(mark, Text):
            if mark.x is None:
                notes.append({"x": 0.995, "y": mark.y, "xref": f"{xref} domain", "yref": yref, "text": mark.text,
                                  "showarrow": False, "xanchor": "right", "font": {"color": mark.color, "size": 11}})
            else:
                notes.append({"x": mark.x, "y": mark.y, "xref": xref, "yref": yref, "text": mark.text, "showarrow": False,
                                  "xanchor": {"left": "left", "right": "right"}.get(mark.ha, "center"),
                                  "font": {"color": mark.color, "size": 11}})
    return shapes, notes


def _legend_trace(entry: LegendEntry) -> dict:
    if entry.patch:
        return {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": entry.label, "showlegend": True,
                    "marker": {"symbol": "square", "size": 12, "color": hex_to_rgba(entry.color, entry.alpha),
                                "line": {"color": entry.edgecolor or entry.color, "width": 1}}}
    mode = ("lines" if entry.linestyle != "none" else "") + ("+markers" if entry.marker else "")
    return {"type": "scatter", "x": [None], "y": [None], "mode": mode.strip("+") or "lines", "name": entry.label,
                "legendgroup": entry.label, "showlegend": True,
                "line": {"color": entry.color, "dash": _DASH[entry.linestyle], "width": entry.linewidth},
                "marker": {"symbol": symbol(entry.marker, entry.hollow), "size": 9, "color": entry.color}}


def _axis(panel: Panel, which: str) -> dict:
    log = panel.xlog if which == "x" else panel.ylog
    lim = panel.xlim if which == "x" else panel.ylim
    ticks = panel.xticks if which == "x" else panel.yticks
    axis: dict = {"showgrid": panel.grid, "zeroline": False, "title": {"text": panel.xlabel if which == "x" else panel.ylabel}}
    if log:
        axis["type"] = "log"
    if lim is not None:
        lo, hi = lim
        axis["range"] = [np.log10(lo), np.log10(hi)] if log else [lo, hi]
        if which == "y" and panel.yreverse:
            axis["range"] = axis["range"][::-1]
    elif which == "y" and panel.yreverse:
        axis["autorange"] = "reversed"
    if ticks is not None:
        axis.update(tickvals=list(ticks[0]),
                    ticktext=[html_text(t) for t in ticks[1]])
    if which == "x" and panel.xtick_rotation:
        axis["tickangle"] = -panel.xtick_rotation
    if which == "y" and panel.find(Image):  # row 0 at the top, square pixels
        axis.update(autorange="reversed", scaleanchor="x")
    if which == "y" and panel.hide_yaxis:
        axis.update(showticklabels=False, ticks="")
    return axis


def to_plotly(spec: FigureSpec):
    """The plotly Figure of ``spec``."""
    from plotly.subplots import make_subplots

    rows, cols = spec.grid
    titles = [html_text(p.title) + "".join(f"<br><sup>{html_text(t.replace(chr(10), ' · '))}</sup>"
                                           for t in (p.subtitle, *p.notes) if t) for p in spec.panels] or ["no data"]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, shared_yaxes=spec.sharey,
                        horizontal_spacing=0.08 if cols > 1 else 0.0, vertical_spacing=0.18 if rows > 1 else 0.0)
    shapes, annotations = [], list(fig.layout.annotations)
    traces, trace_rows, trace_cols = [], [], []
    for i, panel in enumerate(spec.panels):
        row, col = i // cols + 1, i % cols + 1
        for trace in _traces(panel):
            traces.append(trace)
            trace_rows.append(row)
            trace_cols.append(col)
        panel_shapes, panel_notes = _decorations(panel, i)
        shapes += panel_shapes
        annotations += panel_notes
        fig.update_xaxes(_axis(panel, "x"), row=row, col=col)
        fig.update_yaxes(_axis(panel, "y"), row=row, col=col)
    for trace in [t for t in traces if t["type"] == "heatmap"][1:]:
        trace["showscale"] = False  # the panels share one scale: one colour bar
    if traces:  # one call: adding traces one by one validates the whole figure each time
        fig.add_traces(traces, rows=trace_rows, cols=trace_cols)
    fig.add_traces([_legend_trace(entry) for entry in spec.legend])
    head = html_text(spec.title) + (f"<br><sup>{html_text(spec.subtitle)}</sup>" if spec.subtitle else "")
    if spec.notes:
        annotations.append({"x": 0, "y": 0, "xref": "paper", "yref": "paper", "yshift": -150, "xanchor": "left", "yanchor": "top",
                                "text": "<br>".join(spec.notes), "showarrow": False, "align": "left", "font": {"size": 11}})
    height = int(max(spec.height_in * 110, 420) + 60 * len(spec.notes))
    fig.update_layout(**plotly_layout(head, height=height, width=1000, shapes=shapes, annotations=annotations,
                                      legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
                                      margin={"l": 80, "r": 30, "t": 110, "b": 170 + 18 * len(spec.notes)}))
    return fig


__all__ = ["symbol", "to_plotly"]
