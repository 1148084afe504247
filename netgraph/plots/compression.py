"""Figures of a pruning comparison: accuracy, effective compression, per-layer density
and log phi against compression, one colour and marker per method everywhere.

Every function takes ``records``: the rows of the comparison results table, dicts
with (at least some of) the keys ``method``, ``protocol`` ('init' | 'post'),
``target_compression``, ``nominal_compression``, ``effective_compression``,
``seed``, ``accuracy_before_finetune``, ``accuracy_after_finetune``,
``dense_accuracy``, ``log_phi``, ``disconnected``, ``collapsed_layers``,
``cut_layers``, ``parameters``, ``flops`` and ``layers`` ({layer: {'density',
'alive_density'}}). Missing values, ``None``, NaN and infinities are tolerated:
a disconnected run has ``log_phi`` None/-inf and ``effective_compression``
None/inf, and is drawn as a marker on the bottom (log phi) or top (effective
compression) axis. Accuracies may be fractions (<= 1) or percentages.
Seeds are averaged: lines show the mean, bands/bars one standard deviation.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from netgraph.plots.style import (
    CUT,
    DENSE,
    FONT,
    WIDTH_IN,
    ZERO_CELL,
    Written,
    grid_shape,
    hex_to_rgba,
    method_color,
    method_marker,
    mpl_style,
    new_figure,
    plotly_layout,
    plotly_symbol,
    prepare_out_dir,
    save_mpl,
    save_plotly,
    sort_methods,
)

PROTOCOL_TITLES = {"init": "pruned at initialisation", "post": "pruned after training"}
COMPRESSION_LABEL = "compression (total / remaining weights)"


# --- reading records ----------------------------------------------------------------


def _num(value) -> float:
    """float(value), NaN for None / non-numbers."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _protocols(records: Sequence[Mapping]) -> list[str]:
    found = {str(r.get("protocol", "init")) for r in records}
    return [p for p in ("init", "post") if p in found] + sorted(found - {"init", "post"})


def _protocol_title(protocol: str) -> str:
    return PROTOCOL_TITLES.get(protocol, protocol)


def _level(record: Mapping) -> float:
    return _num(record.get("target_compression", record.get("nominal_compression")))


def _is_disconnected(record: Mapping) -> bool:
    if record.get("disconnected"):
        return True
    log_phi = _num(record.get("log_phi"))
    return record.get("log_phi", 0.0) is not None and log_phi == -math.inf


def _collapsed(record: Mapping) -> bool:
    return bool(record.get("collapsed_layers")) or _is_disconnected(record)


def _accuracy_scale(records: Sequence[Mapping], keys: Iterable[str]) -> float:
    values = [_num(r.get(k)) for r in records for k in keys]
    finite = [v for v in values if math.isfinite(v)]
    return 100.0 if finite and max(finite) <= 1.0 + 1e-9 else 1.0


@dataclass
class Series:
    """One method's mean curve in one protocol."""

    method: str
    x: np.ndarray  # levels (target compression), ascending
    mean: np.ndarray  # NaN where no finite value
    std: np.ndarray
    n: np.ndarray  # finite values per level
    records: list[list[Mapping]]  # records per level


def _series(records: Sequence[Mapping], protocol: str, value) -> list[Series]:
    """Per method, the mean/std over seeds of ``value(record)`` at every level."""
    by_method: dict[str, dict[float, list[Mapping]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if str(record.get("protocol", "init")) != protocol:
            continue
        level = _level(record)
        if not (math.isfinite(level) and level > 0):
            continue
        by_method[str(record.get("method", "?"))][round(level, 9)].append(record)
    out = []
    for method in sort_methods(by_method):
        levels = sorted(by_method[method])
        groups = [by_method[method][lv] for lv in levels]
        means, stds, counts = [], [], []
        for group in groups:
            vals = np.array([value(r) for r in group], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            counts.append(len(vals))
            means.append(vals.mean() if len(vals) else math.nan)
            stds.append(vals.std() if len(vals) > 1 else 0.0)
        out.append(Series(method, np.array(levels), np.array(means), np.array(stds), np.array(counts), groups))
    return out


def _first_collapse(series: Series) -> int | None:
    for i, group in enumerate(series.records):
        if any(_collapsed(r) for r in group):
            return i
    return None


def _dense(records: Sequence[Mapping], protocol: str, scale: float) -> float:
    vals = [_num(r.get("dense_accuracy")) for r in records if str(r.get("protocol", "init")) == protocol]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) * scale if vals else math.nan


def _log_axis(ax) -> None:
    from matplotlib.ticker import LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(10**0.5,)))  # half-decade ticks
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", axis="both")
    ax.grid(True, which="minor", axis="x", alpha=0.5)


_EDGE_STEP = 0.055  # axes fraction between stacked edge-marker rows


def _reserve_edge(ax, rows: int, side: str, log: bool = False) -> None:
    """Grow the y range so ``rows`` rows of edge markers fit inside the axes on ``side``."""
    if rows <= 0:
        return
    lo, hi = ax.get_ylim()
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    frac = _EDGE_STEP * rows + 0.02
    span = (hi - lo) / (1 - frac)
    lo, hi = (hi - span, hi) if side == "bottom" else (lo, lo + span)
    ax.set_ylim((10**lo, 10**hi) if log else (lo, hi))


def _edge_band(ax, rows: int, side: str) -> None:
    """A light strip marking the edge-marker zone (it is outside the data)."""
    if rows <= 0:
        return
    depth = _EDGE_STEP * rows + 0.01
    lo, hi = (0.0, depth) if side == "bottom" else (1.0 - depth, 1.0)
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((0, lo), 1, hi - lo, transform=ax.transAxes, facecolor="#F0F0F0", edgecolor="none",
                           zorder=0))
    ax.text(0.01, (lo + hi) / 2, "disconnected", transform=ax.transAxes, fontsize=FONT - 3, color="#777777",
            va="center", ha="left", zorder=1)
    # no value ticks inside the strip: it is not on the data scale
    y0, y1 = ax.get_ylim()
    log = ax.get_yscale() == "log"
    if log:
        y0, y1 = math.log10(y0), math.log10(y1)
    cut = y0 + (y1 - y0) * hi if side == "bottom" else y0 + (y1 - y0) * lo
    ticks = [t for t in ax.get_yticks() if (math.log10(t) if log else t) >= cut - 1e-9] if side == "bottom" else \
        [t for t in ax.get_yticks() if (math.log10(t) if log and t > 0 else t) <= cut + 1e-9]
    ax.set_yticks(ticks)
    ax.set_ylim(10**y0 if log else y0, 10**y1 if log else y1)


def _edge_markers(ax, xs, row: int, side: str, color: str, marker: str) -> None:
    """Markers at data x, pinned to the bottom or top of the axes (row ``row`` from the edge)."""
    from matplotlib.transforms import blended_transform_factory

    y = _EDGE_STEP * (row + 0.5) if side == "bottom" else 1 - _EDGE_STEP * (row + 0.5)
    ax.scatter(xs, np.full(len(xs), y), transform=blended_transform_factory(ax.transData, ax.transAxes),
               marker=marker, s=45, color=color, edgecolors="white", linewidths=0.6, zorder=5, clip_on=False)


def _method_handles(methods: Sequence[str]):
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=method_color(m), marker=method_marker(m), label=m) for m in methods]


def _finish(fig, title: str, handles, ncols: int | None = None) -> None:
    fig.suptitle(title, fontweight="bold")
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=ncols or min(len(handles), 5))


def _panels(n: int, height: float = 3.6):
    fig = new_figure(WIDTH_IN, height)
    axes = np.atleast_1d(fig.subplots(1, max(n, 1), sharey=True, squeeze=False)).ravel()
    return fig, axes


def _empty(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777777")


def _write(fig, html_fig, out_dir, name, formats, plotlyjs, info=None) -> Written:
    out = prepare_out_dir(out_dir)
    paths = save_mpl(fig, out, name, formats)
    paths.append(save_plotly(html_fig, out, name, plotlyjs))
    return Written(paths, info or {})


def _plotly_subplots(titles: Sequence[str], shared_yaxes: bool = True, **kwargs):
    from plotly.subplots import make_subplots

    return make_subplots(rows=1, cols=max(len(titles), 1), subplot_titles=list(titles) or [""],
                         shared_yaxes=shared_yaxes, horizontal_spacing=0.06, **kwargs)


def _bottom_legend(n_items: int) -> dict:
    return dict(orientation="h", yanchor="top", y=-0.2, x=0, xanchor="left")


# --- accuracy vs compression ------------------------------------------------------------


_ACCURACY_KEYS = {"after": "accuracy_after_finetune", "before": "accuracy_before_finetune"}


def accuracy_vs_compression(
    records: Sequence[Mapping],
    out_dir: str | os.PathLike,
    name: str = "accuracy_vs_compression",
    *,
    accuracy: str = "after",
    title: str | None = None,
    formats: Sequence[str] = ("png",),
    plotlyjs: bool | str = "directory",
) -> Written:
    """Test accuracy (mean ± std over seeds) against compression, one panel per
    protocol. ``accuracy``: 'after' (fine-tuned), 'before' or 'both' (before
    fine-tuning dashed). An X marks each method's first level where a layer
    collapsed or the network disconnected; the dashed grey line is the dense model.
    """
    from matplotlib.lines import Line2D

    if accuracy not in ("after", "before", "both"):
        raise ValueError("accuracy must be 'after', 'before' or 'both'")
    kinds = ["after", "before"] if accuracy == "both" else [accuracy]
    scale = _accuracy_scale(records, [_ACCURACY_KEYS[k] for k in kinds] + ["dense_accuracy"])
    protocols = _protocols(records)
    title = title or "Accuracy vs compression"
    ylabel = "test accuracy (%)" if scale == 100.0 or _looks_percent(records) else "test accuracy"
    html = _plotly_subplots([_protocol_title(p) for p in protocols] or ["no data"])
    methods_seen: list[str] = []
    collapse_drawn = dense_drawn = False

    with mpl_style():
        fig, axes = _panels(len(protocols))
        for col, (ax, protocol) in enumerate(zip(axes, protocols or [None])):
            if protocol is None:
                _empty(ax)
                continue
            dense = _dense(records, protocol, scale)
            if math.isfinite(dense):
                dense_drawn = True
                ax.axhline(dense, color=DENSE, ls="--", lw=1.2, zorder=1)
                ax.annotate(f"dense {dense:.1f}", (1.0, dense), xycoords=("axes fraction", "data"),
                            xytext=(-2, 3), textcoords="offset points", ha="right", va="bottom",
                            fontsize=FONT - 2, color=DENSE)
                html.add_hline(y=dense, line=dict(color=DENSE, dash="dash", width=1.5), row=1, col=col + 1,
                               annotation_text=f"dense {dense:.1f}", annotation_position="bottom right")
            for kind in kinds:
                key = _ACCURACY_KEYS[kind]
                for s in _series(records, protocol, lambda r, key=key: _num(r.get(key)) * scale):
                    color, marker = method_color(s.method), method_marker(s.method)
                    dashed = kind == "before" and accuracy == "both"
                    ok = np.isfinite(s.mean)
                    ax.plot(s.x[ok], s.mean[ok], color=color, marker=marker, ls="--" if dashed else "-",
                            lw=1.1 if dashed else 1.6, alpha=0.7 if dashed else 1.0, ms=4 if dashed else 5,
                            zorder=3)
                    if not dashed:
                        ax.fill_between(s.x[ok], (s.mean - s.std)[ok], (s.mean + s.std)[ok], color=color,
                                        alpha=0.13, lw=0, zorder=2)
                    if s.method not in methods_seen:
                        methods_seen.append(s.method)
                    _html_series(html, s, col, kind, dashed, methods_seen)
                    first = _first_collapse(s)
                    if first is not None and not dashed:
                        collapse_drawn = True
                        _mark_collapse(ax, html, s, first, col)
            _log_axis(ax)
            ax.set_title(_protocol_title(protocol))
            ax.set_xlabel(COMPRESSION_LABEL)
        axes[0].set_ylabel(ylabel)
        handles = _method_handles(sort_methods(methods_seen))
        if accuracy == "both":
            handles += [Line2D([], [], color="#444444", label="after fine-tuning"),
                        Line2D([], [], color="#444444", ls="--", label="before fine-tuning")]
        if collapse_drawn:
            handles.append(Line2D([], [], color="#444444", marker="X", ls="", ms=9, mec="white",
                                  label="first collapse / disconnection"))
        if dense_drawn:
            handles.append(Line2D([], [], color=DENSE, ls="--", label="dense"))
        _finish(fig, title, handles)
        subtitle = "mean ± std over seeds" + ("; dashed: before fine-tuning" if accuracy == "both" else "")
        html.update_layout(**plotly_layout(f"{title}<br><sup>{subtitle}; ✕ first collapse or disconnection</sup>",
                                           height=480, legend=_bottom_legend(len(handles)),
                                           margin=dict(l=70, r=20, t=90, b=140)))
        html.update_xaxes(type="log", title_text=COMPRESSION_LABEL, showgrid=True)
        html.update_yaxes(showgrid=True)
        html.update_yaxes(title_text=ylabel, row=1, col=1)
        return _write(fig, html, out_dir, name, formats, plotlyjs)


def _looks_percent(records: Sequence[Mapping]) -> bool:
    return any(_num(r.get(k)) > 1.0 for r in records for k in ("accuracy_after_finetune", "dense_accuracy"))


def _mark_collapse(ax, html, s: Series, first: int, col: int) -> None:
    from matplotlib.transforms import blended_transform_factory

    color = method_color(s.method)
    x = s.x[first]
    y = s.mean[first]
    if math.isfinite(y):
        ax.plot([x], [y], marker="X", ms=10, color=color, mec="white", mew=0.8, ls="", zorder=5)
        html_y, yref = y, None
    else:  # no accuracy there: mark the bottom axis
        ax.plot([x], [0.0], marker="X", ms=10, color=color, mec="white", mew=0.8, ls="", zorder=5, clip_on=False,
                transform=blended_transform_factory(ax.transData, ax.transAxes))
        html_y, yref = None, "paper"
    reasons = sorted({"disconnected" if _is_disconnected(r) else "collapsed: " + ", ".join(r["collapsed_layers"])
                      for r in s.records[first] if _collapsed(r)})
    hover = f"{s.method}: first collapse at {x:.3g}×<br>" + "<br>".join(reasons[:4])
    if html_y is not None:
        html.add_scatter(x=[x], y=[html_y], mode="markers", row=1, col=col + 1, showlegend=False,
                         legendgroup=s.method, hovertemplate=hover + "<extra></extra>",
                         marker=dict(symbol="x", size=13, color=color, line=dict(color="white", width=1)))
    else:
        html.add_vline(x=x, line=dict(color=color, dash="dot", width=1.5), row=1, col=col + 1)


def _html_series(html, s: Series, col: int, kind: str, dashed: bool, methods_seen: list[str]) -> None:
    color = method_color(s.method)
    ok = np.isfinite(s.mean)
    text = [f"{s.method} ({kind} fine-tuning)<br>{x:.3g}×: {m:.2f} ± {sd:.2f} (n={n})"
            for x, m, sd, n in zip(s.x[ok], s.mean[ok], s.std[ok], s.n[ok])]
    label = s.method + (" (before fine-tuning)" if dashed else "")
    html.add_scatter(
        x=s.x[ok], y=s.mean[ok], mode="lines+markers", name=label,
        legendgroup=s.method, showlegend=label not in _legend_names(html), row=1, col=col + 1,
        line=dict(color=color, dash="dash" if dashed else "solid", width=1.5 if dashed else 2),
        marker=dict(symbol=plotly_symbol(s.method), size=6 if dashed else 8, color=color),
        error_y=None if dashed else dict(type="data", array=s.std[ok], visible=True, thickness=1, width=3,
                                         color=hex_to_rgba(color, 0.6)),
        text=text, hovertemplate="%{text}<extra></extra>",
    )


# --- effective vs nominal compression ------------------------------------------------


def effective_vs_nominal(
    records: Sequence[Mapping],
    out_dir: str | os.PathLike,
    name: str = "effective_vs_nominal",
    *,
    title: str | None = None,
    formats: Sequence[str] = ("png",),
    plotlyjs: bool | str = "directory",
) -> Written:
    """Effective (total / alive) against nominal (total / nonzero) compression,
    log-log, every run as a point and the (log-)mean over seeds per level as a
    line, with the y = x line (no dead weights). Runs with no alive weight
    (disconnected) sit as triangles on the top axis."""
    from matplotlib.lines import Line2D

    protocols = _protocols(records)
    title = title or "Effective vs nominal compression"
    # (protocol, method) -> finite points, disconnected nominal values, mean line
    data: dict[tuple[str, str], dict] = {}
    lo, hi = math.inf, 0.0
    for protocol in protocols:
        rows = [r for r in records if str(r.get("protocol", "init")) == protocol]
        for method in sort_methods(str(r.get("method", "?")) for r in rows):
            mine = [r for r in rows if str(r.get("method", "?")) == method]
            pts = [(_num(r.get("nominal_compression")), _effective(r), r) for r in mine]
            pts = [(x, y, r) for x, y, r in pts if math.isfinite(x) and x > 0]
            finite = [(x, y, r) for x, y, r in pts if math.isfinite(y) and y > 0]
            lost = [x for x, y, _ in pts if y == math.inf]
            line = _series([r for _, _, r in finite], protocol, lambda r: math.log10(_effective(r)))
            if line:
                lx = np.array([_mean_nominal(g) for g in line[0].records])
                order = np.argsort(lx)
                line_xy = (lx[order], 10 ** line[0].mean[order])
            else:
                line_xy = (np.zeros(0), np.zeros(0))
            data[(protocol, method)] = {"points": finite, "lost": lost, "line": line_xy}
            values = [v for x, y, _ in finite for v in (x, y)] + lost
            if values:
                lo, hi = min(lo, min(values)), max(hi, max(values))
    span = np.array([lo / 1.6, hi * 1.6]) if math.isfinite(lo) and hi > 0 else np.array([1.0, 10.0])
    any_lost = any(d["lost"] for d in data.values())
    lost_rows: dict[str, int] = {}
    n_lost_rows = len({m for (_, m), d in data.items() if d["lost"]})
    y_span = span.copy()
    if n_lost_rows:  # room at the top for one row of triangles per disconnected method
        y_span[1] = 10 ** (math.log10(span[1]) + (math.log10(span[1]) - math.log10(span[0]))
                           * (_EDGE_STEP * n_lost_rows + 0.02) / (1 - _EDGE_STEP * n_lost_rows - 0.02))

    html = _plotly_subplots([_protocol_title(p) for p in protocols] or ["no data"], shared_yaxes=True)
    with mpl_style():
        fig, axes = _panels(len(protocols), 3.9)
        for col, (ax, protocol) in enumerate(zip(axes, protocols or [None])):
            ax.plot(span, span, color=DENSE, ls="--", lw=1, zorder=1)
            html.add_scatter(x=span, y=span, mode="lines", row=1, col=col + 1, hoverinfo="skip",
                             name="y = x (no dead weights)", showlegend=col == 0,
                             line=dict(color=DENSE, dash="dash", width=1))
            if protocol is None:
                _empty(ax)
                continue
            for (proto, method), d in data.items():
                if proto != protocol:
                    continue
                color, marker = method_color(method), method_marker(method)
                first = method not in _legend_names(html)
                if d["points"]:
                    xs = np.array([p[0] for p in d["points"]])
                    ys = np.array([p[1] for p in d["points"]])
                    ax.scatter(xs, ys, s=16, color=color, marker=marker, alpha=0.5, lw=0, zorder=3)
                    text = [f"{method} · seed {r.get('seed', '?')}<br>nominal {x:.3g}×, effective {y:.3g}×"
                            for x, y, r in d["points"]]
                    html.add_scatter(x=xs, y=ys, mode="markers", name=method, legendgroup=method,
                                     showlegend=first, row=1, col=col + 1, text=text,
                                     hovertemplate="%{text}<extra></extra>",
                                     marker=dict(symbol=plotly_symbol(method), color=color, size=8, opacity=0.6))
                    first = False
                lx, ly = d["line"]
                if len(lx):
                    ax.plot(lx, ly, color=color, lw=1.5, zorder=4)
                    html.add_scatter(x=lx, y=ly, mode="lines", legendgroup=method, name=method,
                                     showlegend=first, row=1, col=col + 1, hoverinfo="skip",
                                     line=dict(color=color, width=2))
                    first = False
                if d["lost"]:
                    lost_rows[method] = lost_rows.get(method, len(lost_rows))
                    _edge_markers(ax, d["lost"], lost_rows[method], "top", color, "^")
                    y_top = 10 ** (math.log10(y_span[1]) - (math.log10(y_span[1]) - math.log10(y_span[0]))
                                   * _EDGE_STEP * (lost_rows[method] + 0.5))
                    html.add_scatter(x=d["lost"], y=[y_top] * len(d["lost"]), mode="markers", name=method,
                                     legendgroup=method, showlegend=first, row=1, col=col + 1, cliponaxis=False,
                                     marker=dict(symbol="triangle-up", size=12, color=color),
                                     hovertemplate=f"{method}: disconnected at nominal %{{x:.3g}}×<extra></extra>")
            _log_axis(ax)
            ax.set_yscale("log")
            ax.set_xlim(span)
            ax.set_ylim(y_span)
            _edge_band(ax, n_lost_rows, "top")
            ax.set_title(_protocol_title(protocol), pad=10)
            ax.set_xlabel("nominal compression (total / nonzero)")
        axes[0].set_ylabel("effective compression (total / alive)")
        handles = _method_handles(sort_methods(m for _, m in data))
        handles.append(Line2D([], [], color=DENSE, ls="--", label="y = x (no dead weights)"))
        if any_lost:
            handles.append(Line2D([], [], color="#444444", marker="^", ls="", ms=7,
                                  label="disconnected (no alive weight)"))
        _finish(fig, title, handles)
        html.update_layout(**plotly_layout(f"{title}<br><sup>points: runs; lines: mean over seeds; "
                                           "▲ at the top: disconnected (no alive weight)</sup>", height=480,
                                           legend=_bottom_legend(0), margin=dict(l=70, r=20, t=90, b=140)))
        log_span = [math.log10(span[0]), math.log10(span[1])]
        html.update_xaxes(type="log", range=log_span, title_text="nominal compression (total / nonzero)", showgrid=True)
        html.update_yaxes(type="log", range=[math.log10(y_span[0]), math.log10(y_span[1])], showgrid=True)
        html.update_yaxes(title_text="effective compression (total / alive)", row=1, col=1)
        return _write(fig, html, out_dir, name, formats, plotlyjs)


def _effective(record: Mapping) -> float:
    value = record.get("effective_compression")
    if value is None:
        return math.inf if _is_disconnected(record) else math.nan
    return _num(value)


def _mean_nominal(group: Sequence[Mapping]) -> float:
    vals = [_num(r.get("nominal_compression")) for r in group]
    vals = [math.log10(v) for v in vals if math.isfinite(v) and v > 0]
    return 10 ** float(np.mean(vals)) if vals else math.nan


def _legend_names(html) -> set[str]:
    return {t.name for t in html.data if t.name and t.showlegend is not False}



# --- log phi vs compression ---------------------------------------------------------


def log_phi_vs_compression(
    records: Sequence[Mapping],
    out_dir: str | os.PathLike,
    name: str = "log_phi_vs_compression",
    *,
    title: str | None = None,
    formats: Sequence[str] = ("png",),
    plotlyjs: bool | str = "directory",
) -> Written:
    """log phi (natural log of the input->output path sum) against compression,
    mean ± std over the connected seeds per method, one panel per protocol.
    Disconnected runs (phi = 0) are triangles on the bottom axis."""
    from matplotlib.lines import Line2D

    protocols = _protocols(records)
    title = title or "Path sum vs compression"
    ylabel = "log φ (natural log of the path sum)"
    html = _plotly_subplots([_protocol_title(p) for p in protocols] or ["no data"])
    methods_seen: list[str] = []
    lost_any = False
    lost_rows: dict[str, int] = {}
    pending: list = []
    finite_all = [v for r in records for v in [_num(r.get("log_phi"))] if math.isfinite(v) and not _is_disconnected(r)]
    y_low = (min(finite_all) - 0.05 * (max(finite_all) - min(finite_all) + 1)) if finite_all else 0.0
    y_high = (max(finite_all) + 0.05 * (max(finite_all) - min(finite_all) + 1)) if finite_all else 1.0
    n_lost = len({str(r.get("method", "?")) for r in records if _is_disconnected(r)})
    with mpl_style():
        fig, axes = _panels(len(protocols))
        for col, (ax, protocol) in enumerate(zip(axes, protocols or [None])):
            if protocol is None:
                _empty(ax)
                continue
            def value(r: Mapping) -> float:
                return math.nan if _is_disconnected(r) else _num(r.get("log_phi"))

            for s in _series(records, protocol, value):
                color, marker = method_color(s.method), method_marker(s.method)
                if s.method not in methods_seen:
                    methods_seen.append(s.method)
                ok = np.isfinite(s.mean)
                ax.plot(s.x[ok], s.mean[ok], color=color, marker=marker, zorder=3)
                ax.fill_between(s.x[ok], (s.mean - s.std)[ok], (s.mean + s.std)[ok], color=color, alpha=0.13, lw=0)
                text = [f"{s.method}<br>{x:.3g}×: log φ = {m:.2f} ± {sd:.2f} (n={n})"
                        for x, m, sd, n in zip(s.x[ok], s.mean[ok], s.std[ok], s.n[ok])]
                html.add_scatter(x=s.x[ok], y=s.mean[ok], mode="lines+markers", name=s.method, legendgroup=s.method,
                                 showlegend=s.method not in _legend_names(html), row=1, col=col + 1,
                                 line=dict(color=color, width=2), text=text, hovertemplate="%{text}<extra></extra>",
                                 marker=dict(symbol=plotly_symbol(s.method), size=8, color=color),
                                 error_y=dict(type="data", array=s.std[ok], thickness=1, width=3,
                                              color=hex_to_rgba(color, 0.6)))
                lost = [(x, sum(_is_disconnected(r) for r in g), len(g)) for x, g in zip(s.x, s.records)
                        if any(_is_disconnected(r) for r in g)]
                if lost:
                    lost_any = True
                    xs = [x for x, _, _ in lost]
                    lost_rows[s.method] = lost_rows.get(s.method, len(lost_rows))
                    pending.append((ax, xs, lost_rows[s.method], color))
                    html.add_scatter(x=xs, y=[y_low - (y_high - y_low) * _EDGE_STEP * (lost_rows[s.method] + 0.5)]
                                     * len(xs), mode="markers", legendgroup=s.method,
                                     name=s.method, showlegend=False, row=1, col=col + 1, cliponaxis=False,
                                     marker=dict(symbol="triangle-down", size=12, color=color),
                                     text=[f"{s.method}: {k}/{n} runs disconnected at {x:.3g}× (φ = 0)"
                                           for x, k, n in lost], hovertemplate="%{text}<extra></extra>")
            _log_axis(ax)
            ax.set_title(_protocol_title(protocol), pad=10)
            ax.set_xlabel(COMPRESSION_LABEL)
        _reserve_edge(axes[0], len(lost_rows), "bottom")  # y is shared: one call covers every panel
        for ax in axes[: len(protocols)]:
            _edge_band(ax, len(lost_rows), "bottom")
        for ax, xs, row, color in pending:
            _edge_markers(ax, xs, row, "bottom", color, "v")
        axes[0].set_ylabel(ylabel)
        handles = _method_handles(sort_methods(methods_seen))
        if lost_any:
            handles.append(Line2D([], [], color="#444444", marker="v", ls="", ms=7, label="disconnected (φ = 0)"))
        _finish(fig, title, handles)
        html.update_layout(**plotly_layout(f"{title}<br><sup>mean ± std over connected seeds; "
                                           "▼ on the bottom: disconnected runs (φ = 0)</sup>", height=480,
                                           legend=_bottom_legend(0), margin=dict(l=70, r=20, t=90, b=140)))
        html.update_xaxes(type="log", title_text=COMPRESSION_LABEL, showgrid=True)
        html.update_yaxes(showgrid=True)
        html.update_yaxes(title_text=ylabel, row=1, col=1)
        html.update_yaxes(range=[y_low - (y_high - y_low) * (_EDGE_STEP * n_lost + 0.02), y_high])
        return _write(fig, html, out_dir, name, formats, plotlyjs)


# --- per-layer density heatmap ------------------------------------------------------


def _layer_names(records: Sequence[Mapping]) -> list[str]:
    names: dict[str, None] = {}
    for r in records:
        for layer in r.get("layers") or {}:
            names.setdefault(layer, None)
    return list(names)


def _short(layer: str) -> str:
    return layer[: -len(".weight")] if layer.endswith(".weight") else layer


def _level_label(x: float, tex: bool = False) -> str:
    exponent = math.log10(x)
    if abs(exponent - round(exponent)) < 1e-9 and x < 1e4:
        return f"{x:g}"
    return f"$10^{{{exponent:.3g}}}$" if tex else f"10^{exponent:.3g}"


def layer_density_heatmap(
    records: Sequence[Mapping],
    out_dir: str | os.PathLike,
    name: str = "layer_density",
    *,
    methods: Sequence[str] | None = None,
    protocol: str | None = None,
    density: str = "alive_density",
    title: str | None = None,
    formats: Sequence[str] = ("png",),
    plotlyjs: bool | str = "directory",
) -> Written:
    """Per-layer remaining density across compression levels: one heatmap per
    method (layers x levels, mean over seeds, log colour scale), zero cells (a
    cut layer for ``alive_density``, a collapsed one for ``density``) in grey with
    a cross. ``protocol=None`` draws every protocol found, one file each
    (``{name}_{protocol}``) when there are several."""
    if density not in ("alive_density", "density"):
        raise ValueError("density must be 'alive_density' or 'density'")
    protocols = [protocol] if protocol is not None else _protocols(records) or ["init"]
    written = Written()
    for proto in protocols:
        rows = [r for r in records if str(r.get("protocol", "init")) == proto]
        file_name = name if len(protocols) == 1 else f"{name}_{proto}"
        part = _heatmap_file(rows, out_dir, file_name, methods, proto, density, title, formats, plotlyjs)
        written.extend(part)
    return written


def _heatmap_grid(rows: Sequence[Mapping], method: str, layers: list[str], levels: list[float], density: str):
    grid = np.full((len(layers), len(levels)), np.nan)
    index = {lv: j for j, lv in enumerate(levels)}
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for r in rows:
        if str(r.get("method", "?")) != method:
            continue
        j = index.get(round(_level(r), 9))
        if j is None:
            continue
        for i, layer in enumerate(layers):
            value = _num(((r.get("layers") or {}).get(layer) or {}).get(density))
            if math.isfinite(value):
                cells[(i, j)].append(value)
    for (i, j), vals in cells.items():
        grid[i, j] = float(np.mean(vals))
    return grid


def _heatmap_file(rows, out_dir, name, methods, protocol, density, title, formats, plotlyjs) -> Written:
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.patches import Patch

    what = "alive" if density == "alive_density" else "nonzero"
    title = title or f"Remaining {what} weights per layer ({_protocol_title(protocol)})"
    methods = list(methods) if methods is not None else sort_methods(str(r.get("method", "?")) for r in rows)
    layers = _layer_names(rows)
    levels = sorted({round(_level(r), 9) for r in rows if math.isfinite(_level(r)) and _level(r) > 0})
    grids = [_heatmap_grid(rows, m, layers, levels, density) for m in methods]
    positive = [g[g > 0].min() for g in grids if (g > 0).any()]
    vmin = max(min(positive), 1e-4) if positive else 1e-3
    vmin = 10 ** math.floor(math.log10(vmin))
    norm = LogNorm(vmin=vmin, vmax=1.0)
    cmap = colormaps["viridis"].with_extremes(bad=(1.0, 1.0, 1.0, 0.0))  # no data: the white background
    zero_cmap = ListedColormap([ZERO_CELL])

    n_rows, n_cols = grid_shape(len(methods), 4 if len(layers) <= 20 else 3)
    cell_h = 0.16 if len(layers) > 12 else 0.22
    height = min(1.1 + n_rows * (0.9 + cell_h * max(len(layers), 1)), 12.0)
    x_labels = [_level_label(lv) for lv in levels]
    x_tex = [_level_label(lv, tex=True) for lv in levels]
    y_labels = [_short(layer) for layer in layers]
    y_step = max(1, math.ceil(len(layers) / 30))
    with mpl_style():
        fig = new_figure(WIDTH_IN, height)
        axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False, sharey=True)).ravel()
        image = None
        for k, (ax, method, grid) in enumerate(zip(axes, methods, grids)):
            shown = np.where(grid > 0, np.maximum(grid, vmin), np.nan)
            image = ax.imshow(np.ma.masked_invalid(shown), aspect="auto", cmap=cmap, norm=norm,
                              interpolation="nearest")
            ax.imshow(np.ma.masked_where(grid != 0, np.ones_like(grid)), aspect="auto", cmap=zero_cmap,
                      interpolation="nearest")
            if len(layers) <= 20:  # beyond that the grey cells speak for themselves
                zero_i, zero_j = np.nonzero(grid == 0)
                ax.scatter(zero_j, zero_i, marker="x", s=14, color=CUT, lw=1.0)
            ax.set_title(method, color=method_color(method), fontweight="bold")
            ax.set_xticks(range(len(levels)), x_tex, rotation=45, ha="right", rotation_mode="anchor",
                          fontsize=FONT - 2)
            ax.set_yticks(range(0, len(layers), y_step), y_labels[::y_step], fontsize=FONT - 2)
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.tick_params(length=0)
            if k % n_cols == 0:
                ax.set_ylabel("layer (input → output)")
            if k >= len(methods) - n_cols:
                ax.set_xlabel("compression (×)", fontsize=FONT - 1)
        for ax in axes[len(methods):]:
            ax.set_visible(False)
        if not methods:
            _empty(axes[0])
            axes[0].set_visible(True)
        if image is not None:
            bar = fig.colorbar(image, ax=axes[: len(methods)].tolist(), shrink=0.9, pad=0.02)
            bar.set_label(f"{what} / total weights (log scale)")
        fig.suptitle(title, fontweight="bold")
        fig.legend(handles=[Patch(facecolor=ZERO_CELL, edgecolor=CUT, label="0: layer cut" if what == "alive"
                                  else "0: layer collapsed"),
                            Patch(facecolor="white", edgecolor="#BBBBBB", label="no data")],
                   loc="outside lower center", ncols=2)
        html = _heatmap_plotly(methods, grids, x_labels, y_labels, vmin, title, what)
        return _write(fig, html, out_dir, name, formats, plotlyjs,
                      {"methods": methods, "layers": layers, "levels": levels})


def _heatmap_plotly(methods, grids, x_labels, y_labels, vmin, title, what):
    from plotly.subplots import make_subplots

    n_rows, n_cols = grid_shape(len(methods), 3)
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=list(methods) or ["no data"], shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.12)
    log_min = math.log10(vmin)
    for k, (method, grid) in enumerate(zip(methods, grids)):
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(grid > 0, np.log10(np.maximum(grid, vmin)), np.nan)
        text = [[("no data" if np.isnan(v) else "0 (cut)" if v == 0 and what == "alive" else
                  "0 (collapsed)" if v == 0 else f"{v:.3g}") for v in row] for row in grid]
        fig.add_heatmap(z=z, x=x_labels, y=y_labels, row=k // n_cols + 1, col=k % n_cols + 1, zmin=log_min, zmax=0,
                        colorscale="Viridis", showscale=k == 0, text=text,
                        hovertemplate=f"{method}<br>%{{y}} at %{{x}}×: %{{text}}<extra></extra>",
                        colorbar=dict(title=dict(text=f"{what} / total", side="right"),
                                      tickvals=list(range(int(log_min), 1)),
                                      ticktext=[f"{10.0**e:g}" for e in range(int(log_min), 1)]))
        zi, zj = np.nonzero(grid == 0)
        if len(zi):
            fig.add_scatter(x=[x_labels[j] for j in zj], y=[y_labels[i] for i in zi], mode="markers",
                            row=k // n_cols + 1, col=k % n_cols + 1, showlegend=False, hoverinfo="skip",
                            marker=dict(symbol="x", size=7, color=CUT))
    zero = "cut" if what == "alive" else "collapsed"
    fig.update_layout(**plotly_layout(f"{title}<br><sup>mean over seeds; grey ✕: zero (layer {zero})</sup>",
                                      height=min(260 + n_rows * (80 + 16 * max(len(y_labels), 1)), 1800),
                                      plot_bgcolor="white"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", title_text="compression (×)")
    return fig


__all__ = ["accuracy_vs_compression", "effective_vs_nominal", "layer_density_heatmap", "log_phi_vs_compression"]
