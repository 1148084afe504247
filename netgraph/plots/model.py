"""Figures of one (pruned) model: its surviving paths and its per-layer weights.

:func:`plot_model` is what ``netgraph plot CHECKPOINT`` draws.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from netgraph.connectivity.propagate import Flows
from netgraph.connectivity.report import ConnectivityReport, LayerReport, analyze
from netgraph.graph.channels import ChannelGraph
from netgraph.plots.layout import MAX_DEAD, MAX_EXACT, TOP_K
from netgraph.plots.paths import surviving_paths
from netgraph.plots.style import (
    ALIVE,
    CUT,
    FONT,
    OKABE_ITO,
    WIDTH_IN,
    Written,
    mpl_style,
    new_figure,
    plotly_layout,
    prepare_out_dir,
    save_mpl,
    save_plotly,
)

PRUNED = "#E4E4E4"
DEAD_W = OKABE_ITO["orange"]


def _fmt_compression(value: float) -> str:
    if not math.isfinite(value):
        return "∞"
    return f"{value:,.0f}×" if value >= 1000 else f"{value:.3g}×"


def _summary(report: ConnectivityReport) -> str:
    phi = "disconnected" if report.disconnected else f"log φ = {report.log_phi:.1f}"
    return (f"nominal {_fmt_compression(report.nominal_compression)}, effective "
            f"{_fmt_compression(report.effective_compression)} · {report.dead:,} dead weights · {phi}")


def _status(layer: LayerReport) -> str:
    return "collapsed" if layer.collapsed else "cut" if layer.cut else ""


def layer_bars(
    report: ConnectivityReport,
    out_dir: str | os.PathLike,
    name: str = "layers",
    *,
    title: str | None = None,
    formats: Sequence[str] = ("png",),
    plotlyjs: bool | str = "directory",
) -> Written:
    """Per prunable layer, nested bars on a log axis: all weights (grey: pruned
    part), nonzero (orange: dead part) and alive (blue); cut and collapsed layers
    labelled in vermillion."""
    from matplotlib.patches import Patch

    layers = report.layers
    names = [layer.name[: -len(".weight")] if layer.name.endswith(".weight") else layer.name for layer in layers]
    params = np.array([layer.parameters for layer in layers], dtype=np.float64)
    nonzero = np.array([layer.nonzero for layer in layers], dtype=np.float64)
    alive = np.array([layer.alive for layer in layers], dtype=np.float64)
    title = title or f"Weights per layer — {report.model}"
    subtitle = _summary(report)
    n = max(len(layers), 1)
    bar_h = 0.24 if n <= 40 else 0.15
    with mpl_style():
        fig = new_figure(WIDTH_IN, min(1.6 + bar_h * n, 16.0))
        ax = fig.subplots()
        y = np.arange(len(layers))
        base = 0.7
        ax.barh(y, params - base, left=base, height=0.72, color=PRUNED, label="pruned (zero)")
        ax.barh(y, np.where(nonzero > 0, nonzero - base, 0), left=base, height=0.72, color=DEAD_W,
                label="dead (nonzero, on no input→output path)")
        ax.barh(y, np.where(alive > 0, alive - base, 0), left=base, height=0.72, color=ALIVE, label="alive")
        ax.set_xscale("log")
        ax.set_xlim(base, params.max() * 200 if len(params) else 10)
        ax.set_yticks(y, names, fontsize=FONT - 1 if n <= 30 else FONT - 3)
        ax.invert_yaxis()
        ax.set_ylim(len(layers) - 0.4, -0.6)
        for i, layer in enumerate(layers):
            status = _status(layer)
            share = layer.alive / layer.parameters if layer.parameters else 0.0
            text = f"{layer.alive:,}/{layer.parameters:,} alive ({share:.2%})"
            if layer.dead:
                text += f", {layer.dead:,} dead"
            ax.text(params[i] * 1.25, i, text, va="center", ha="left", fontsize=FONT - 3 if n <= 30 else FONT - 4,
                    color="#333333")
            if status:
                ax.get_yticklabels()[i].set_color(CUT)
                ax.get_yticklabels()[i].set_fontweight("bold")
                ax.text(base * 1.05, i, status, va="center", ha="left", color="white" if layer.nonzero else CUT,
                        fontsize=FONT - 3, fontweight="bold")
        ax.set_xlabel("weights (log scale)")
        ax.grid(True, axis="x", which="major")
        ax.set_axisbelow(True)
        ax.set_title(subtitle, fontsize=FONT - 1, color="#333333")
        fig.suptitle(title, fontweight="bold")
        handles, _ = ax.get_legend_handles_labels()
        handles.append(Patch(facecolor="white", edgecolor=CUT, label="layer name in red: cut / collapsed"))
        fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=FONT - 2)
        out = prepare_out_dir(out_dir)
        paths = save_mpl(fig, out, name, formats)
    paths.append(save_plotly(_layer_bars_plotly(layers, names, title, subtitle), out, name, plotlyjs))
    return Written(paths, {"layers": [layer.name for layer in layers]})


def _layer_bars_plotly(layers: list[LayerReport], names: list[str], title: str, subtitle: str):
    import plotly.graph_objects as go

    labels = [f"<span style='color:{CUT}'><b>{n} ({_status(layer)})</b></span>" if _status(layer) else n
              for n, layer in zip(names, layers)]
    hover = [f"{layer.name}<br>{layer.parameters:,} weights, {layer.nonzero:,} nonzero, {layer.alive:,} alive, "
             f"{layer.dead:,} dead<br>alive outputs {layer.out_alive}/{layer.out_width}, "
             f"path share {layer.path_share:.3g}" for layer in layers]
    fig = go.Figure()
    for values, color, label in (
        ([layer.parameters for layer in layers], PRUNED, "pruned (zero)"),
        ([layer.nonzero or None for layer in layers], DEAD_W, "dead (nonzero, on no input→output path)"),
        ([layer.alive or None for layer in layers], ALIVE, "alive"),
    ):
        fig.add_bar(x=values, y=labels, orientation="h", name=label, marker_color=color, text=hover,
                    hovertemplate="%{text}<extra></extra>", textposition="none")
    fig.update_layout(**plotly_layout(f"{title}<br><sup>{subtitle}</sup>", height=min(220 + 24 * len(layers), 2000),
                                      barmode="overlay", legend=dict(orientation="h", y=-0.08, yanchor="top"),
                                      margin=dict(l=180, r=20, t=90, b=90)))
    fig.update_xaxes(type="log", title_text="weights (log scale)", showgrid=True)
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def plot_model(
    graph: ChannelGraph,
    flows: Flows,
    report: ConnectivityReport | None,
    out_dir: str | os.PathLike,
    name: str = "model",
    *,
    label: str | None = None,
    formats: Sequence[str] = ("png",),
    plotlyjs: bool | str = "directory",
    max_exact: int | None = MAX_EXACT,
    top_k: int = TOP_K,
    max_dead: int = MAX_DEAD,
) -> Written:
    """Draw one model: ``{name}_paths`` (its surviving paths) and ``{name}_layers``
    (alive / dead / pruned weights per layer), each as PNG (+ ``formats``) and
    HTML. ``report`` is computed when None. Returns every written path;
    ``.info['paths']`` is the :func:`surviving_paths` info."""
    report = report if report is not None else analyze(graph, flows)
    label = label or (f"{report.model}: nominal {_fmt_compression(report.nominal_compression)}, "
                      f"effective {_fmt_compression(report.effective_compression)}")
    paths = surviving_paths([(label, graph, flows, report)], out_dir, f"{name}_paths",
                            title=f"Surviving input→output paths — {report.model}", formats=formats,
                            plotlyjs=plotlyjs, max_exact=max_exact, top_k=top_k, max_dead=max_dead, max_cols=1)
    bars = layer_bars(report, out_dir, f"{name}_layers", formats=formats, plotlyjs=plotlyjs)
    return Written(list(paths) + list(bars), {"paths": paths.info, "layers": bars.info})


__all__ = ["layer_bars", "plot_model"]
