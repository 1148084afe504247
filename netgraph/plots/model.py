"""Figures of one (pruned) model: its surviving paths (channel or layer level), its
per-layer weights and, for an MLP on images, which input pixels still reach an output.

:func:`plot_model` is what ``netgraph plot CHECKPOINT`` draws.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np

from netgraph.connectivity.export import block_edges
from netgraph.connectivity.propagate import Flows
from netgraph.connectivity.report import ConnectivityReport, LayerReport, analyze
from netgraph.graph.channels import ChannelGraph, layer_key
from netgraph.plots.layout import MAX_EDGES, layered_layout
from netgraph.plots.paths import paths_spec
from netgraph.plots.spec import FigureSpec, Image, LegendEntry, Line, Panel, Span, Text
from netgraph.plots.style import ALIVE, CUT, DEAD, FONT, OKABE_ITO, WIDTH_IN, Written, write_figure

NONZERO = OKABE_ITO["orange"]
#: Above this many channels (or edges) the default drawing is the layer-level view.
MAX_CHANNEL_VIEW_NODES = 3000
MAX_CHANNEL_VIEW_EDGES = 300_000
VIEWS = ("auto", "channels", "layers")


def fmt_compression(value: float) -> str:
    if not math.isfinite(value):
        return "∞"
    return f"{value:,.0f}×" if value >= 1000 else f"{value:.3g}×"


def summary(report: ConnectivityReport) -> str:
    """Nominal and effective compression, dead weights and log phi in one line."""
    phi = "disconnected (φ = 0)" if report.disconnected else f"log φ = {report.log_phi:.1f}"
    return (f"nominal {fmt_compression(report.nominal_compression)}, effective "
            f"{fmt_compression(report.effective_compression)} · {report.dead:,} dead weights · {phi}")


def _short(name: str) -> str:
    return name.removesuffix(".weight")


def _xlabel(tick_labels: Sequence[str]) -> str:
    widths = tick_labels and all(label.endswith(")") for label in tick_labels)
    return "layer (width), input → output" if widths else "layer, input → output"


def _status(layer: LayerReport) -> str:
    return "collapsed" if layer.collapsed else "cut" if layer.cut else ""


# --- layer dots ---------------------------------------------------------------------------


def layer_bars_spec(report: ConnectivityReport, *, title: str | None = None, name: str = "layers") -> FigureSpec:
    """Per prunable layer, the share of its weights that is nonzero (orange ring)
    and alive (blue dot) on a log axis; dots, not bars, since a bar's length on a
    log axis means nothing. Zero shares (a cut or collapsed layer) sit at the
    left edge as vermillion crosses; the right column gives the counts."""
    layers = report.layers
    names = [_short(layer.name) for layer in layers]
    y = np.arange(len(layers), dtype=float)
    nonzero = np.array([layer.nonzero / max(layer.parameters, 1) for layer in layers])
    alive = np.array([layer.alive / max(layer.parameters, 1) for layer in layers])
    positive = np.concatenate([nonzero[nonzero > 0], alive[alive > 0]])
    low = 10 ** (math.log10(positive.min()) - 0.3) if len(positive) else 1e-3
    edge = low * 10**0.15
    n = max(len(layers), 1)
    panel = Panel(xlabel="share of the layer's weights (log scale)", xlog=True, xlim=(low, 1.6),
                  ylim=(len(layers) - 0.4, -0.6), yticks=(list(y), [f"{nm} ({layer.parameters:,})" for nm, layer in
                                                                     zip(names, layers)]),
                  ylabel="layer (weights)")
    for i, layer in enumerate(layers):
        share = [v for v in (nonzero[i], alive[i]) if v > 0]
        if share:
            panel.add(Line([min(share), 1.0], [y[i], y[i]], role="guide", color="#DDDDDD", linewidth=1.0))
    panel.add(Line(np.where(nonzero > 0, nonzero, np.nan), y, name="nonzero", role="nonzero", color=NONZERO,
                   marker="o", linestyle="none", markersize=7, hollow=True,
                   hover=[f"{nm}: {layer.nonzero:,}/{layer.parameters:,} nonzero" for nm, layer in zip(names, layers)]))
    panel.add(Line(np.where(alive > 0, alive, np.nan), y, name="alive", role="alive", color=ALIVE, marker="o",
                   linestyle="none", markersize=5,
                   hover=[f"{nm}: {layer.alive:,} alive, {layer.dead:,} dead" for nm, layer in zip(names, layers)]))
    zero = [i for i in range(len(layers)) if alive[i] == 0]
    if zero:
        panel.add(Line([edge] * len(zero), [y[i] for i in zero], name="no alive weight", role="zero", color=CUT,
                       marker="X", linestyle="none", markersize=8))
    size = FONT - 3 if n <= 30 else FONT - 4
    for i, layer in enumerate(layers):
        status = _status(layer)
        text = f"{alive[i]:.2%} alive" + (f", {layer.dead:,} dead" if layer.dead else "")
        panel.add(Text(None, y[i], (status + ": " if status else "") + text, color=CUT if status else "#333333",
                       size=size, ha="right", role=status or "count"))
    legend = [LegendEntry("nonzero share", NONZERO, "o", "none", hollow=True),
              LegendEntry("alive share (on an input→output path)", ALIVE, "o", "none")]
    if zero:
        legend.append(LegendEntry("no alive weight (cut / collapsed)", CUT, "X", "none"))
    return FigureSpec(name, title or f"Weights per layer — {report.model}", [panel], subtitle=summary(report),
                      legend=legend, width_in=WIDTH_IN, height_in=min(1.9 + (0.24 if n <= 40 else 0.15) * n, 16.0),
                      info={"layers": [layer.name for layer in layers]})


def layer_bars(report: ConnectivityReport, out_dir: str | os.PathLike, name: str = "layers", *,
               title: str | None = None, formats: Sequence[str] = ("png",),
               plotlyjs: bool | str | os.PathLike = "directory") -> Written:
    """Write :func:`layer_bars_spec` as PNG (+ ``formats``) and HTML."""
    return write_figure(layer_bars_spec(report, title=title, name=name), out_dir, formats, plotlyjs)


# --- layer-level view of the paths ---------------------------------------------------------


def layer_view_spec(graph: ChannelGraph, result: Flows, report: ConnectivityReport, *, title: str,
                    subtitle: str = "", name: str = "paths") -> FigureSpec:
    """The surviving paths aggregated by layer, for nets too big to draw channel
    by channel: one column per node group (grey: its width, blue: the share of
    its channels that is alive), one arc per block from its source group(s) to
    its destination, darker and wider the larger the share of its nonzero edges
    that is alive (skip connections arc higher); cut and collapsed layers banded."""
    layout = layered_layout(graph)
    index = {id(g): i for i, g in enumerate(graph.groups)}
    # a norm layer's channels are its input's channels: draw them in that column
    column = list(range(len(graph.groups)))
    for block in graph.blocks:
        if block.kind == "diag":
            column[index[id(block.dst)]] = column[int(graph.node_group[block.src[0]])]
    ticks = layout.ticks(14)
    panel = Panel(title=summary(report), subtitle="aggregated by layer: column = channels alive / width, "
                  "arc = alive / nonzero edges of a block (norm layers drawn with the layer they scale)",
                  xlabel=_xlabel(ticks[1]), grid=False, ylabel="channels alive",
                  yticks=([0.0, 0.5, 1.0], ["0%", "50%", "100%"]),
                  xlim=(layout.group_x[0] - 0.6, layout.group_x[-1] + 0.6), xticks=ticks, xtick_rotation=45)
    top = 1.0
    alive_share = []
    for i, group in enumerate(graph.groups):
        share = float(result.alive[group.offset:group.offset + group.size].mean()) if group.size else 0.0
        alive_share.append(share)
        if column[i] != i:
            continue
        x = float(layout.group_x[i])
        panel.add(Line([x, x], [0.0, 1.0], name=group.name, role="width", color="#DDDDDD", linewidth=5.0))
        if share > 0:
            panel.add(Line([x, x], [0.0, share], name=group.name, role="alive share", color=ALIVE, linewidth=5.0,
                           hover=[f"{group.name}: {share:.1%} of {group.size:,} channels alive"] * 2))
    node_group = graph.node_group
    for block in graph.blocks:
        if block.kind == "diag":
            continue
        edges = block_edges(block, result)
        frac = edges.n_alive / len(edges) if len(edges) else 0.0
        dst = column[index[id(block.dst)]]
        for src in sorted({column[g] for g in np.unique(node_group[block.src])}):
            x0, x1 = float(layout.group_x[src]), float(layout.group_x[dst])
            rise = 0.06 + 0.05 * max(x1 - x0 - 1.0, 0.0) ** 0.7
            t = np.linspace(0, 1, 12)
            top = max(top, 1.08 + rise)
            panel.add(Line(x0 + (x1 - x0) * t, 1.08 + rise * np.sin(np.pi * t), name=block.name, role="block",
                           color=ALIVE if frac > 0 else DEAD, linewidth=0.6 + 2.0 * frac,
                           alpha=0.25 + 0.75 * frac if frac > 0 else 0.6,
                           hover=[f"{block.name}: {edges.n_alive:,} of {len(edges):,} edges alive"] * len(t)))
    panel.ylim = (-0.03, top + 0.05)
    cut = {layer.name for layer in report.layers if layer.cut or layer.collapsed}
    for block in graph.param_blocks():
        layer_name = layer_key(block)
        if layer_name in cut:
            x = float(layout.group_x[index[id(block.dst)]])
            panel.add(Span(x - 0.3, x + 0.3, name=layer_name, role="cut", color=CUT, alpha=0.15,
                           text="collapsed" if layer_name in report.collapsed_layers else "cut", text_color=CUT))
    legend = [LegendEntry("channels of a layer (grey: all)", "#DDDDDD", patch=True),
              LegendEntry("share of them alive", ALIVE, patch=True),
              LegendEntry("block, width/opacity: share of its edges alive", ALIVE, linewidth=2.0),
              LegendEntry("block with no alive edge", DEAD, linewidth=0.8),
              LegendEntry("cut / collapsed layer", CUT, patch=True, alpha=0.25)]
    return FigureSpec(name, title, [panel], subtitle=subtitle, legend=legend, legend_cols=3, width_in=WIDTH_IN,
                      height_in=4.6, info={"view": "layers", "alive_share": dict(zip(layout.names, alive_share))})


# --- input pixels --------------------------------------------------------------------------


def input_pixels(graph: ChannelGraph, result: Flows, input_shape: Sequence[int]) -> np.ndarray | None:
    """For an MLP on images (input ``(C, H, W)`` or ``(H, W)`` flattened into a
    first Linear layer), per pixel the number of alive first-layer units it feeds
    through a nonzero weight (0: the pixel reaches no output), shape ``(H, W)``
    (summed over channels); None for any other model."""
    shape = tuple(int(n) for n in input_shape)
    if len(shape) not in (2, 3):
        return None
    first = next(iter(graph.param_blocks()), None)
    if first is None:
        return None
    weight = first.source.parameter().detach()
    if weight.ndim != 2 or weight.shape[1] != int(np.prod(shape)) or first.source.region() != (slice(None),):
        return None
    dst_alive = result.alive[first.dst.offset:first.dst.offset + first.dst.size]
    feeds = (weight.cpu().numpy() != 0) & dst_alive[:, None]
    fed = feeds.sum(0) if result.alive[graph.input_nodes].any() else np.zeros(weight.shape[1], np.int64)
    image = fed.reshape(shape)
    return image.sum(0) if image.ndim == 3 else image


def pixels_spec(pixels: np.ndarray, *, title: str, subtitle: str = "", name: str = "pixels") -> FigureSpec:
    """The input pixels of an MLP on images: white reaches no output, darker
    blue feeds more alive first-layer units."""
    reach = int((pixels > 0).sum())
    panel = Panel(title=f"{reach:,} of {pixels.size:,} pixels reach an output", grid=False, xticks=([], []),
                  yticks=([], []), marks=[Image(pixels, vmax=max(float(pixels.max()), 1.0),
                                                colorbar="alive first-layer units it feeds")])
    return FigureSpec(name, title, [panel], subtitle=subtitle, width_in=6.0, height_in=5.2,
                      info={"pixels_reaching": reach, "pixels": int(pixels.size)})


# --- everything for one checkpoint ---------------------------------------------------------


def choose_view(graph: ChannelGraph, view: str = "auto") -> str:
    """'channels' or 'layers': ``auto`` picks the layer view for big graphs."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    if view != "auto":
        return view
    big = graph.n_nodes > MAX_CHANNEL_VIEW_NODES or graph.n_edges() > MAX_CHANNEL_VIEW_EDGES
    return "layers" if big else "channels"


def plot_model(
    graph: ChannelGraph,
    flows: Flows,
    report: ConnectivityReport | None,
    out_dir: str | os.PathLike,
    name: str = "model",
    *,
    title: str | None = None,
    label: str | None = None,
    input_shape: Sequence[int] | None = None,
    view: str = "auto",
    formats: Sequence[str] = ("png",),
    plotlyjs: bool | str | os.PathLike = "directory",
    max_edges: int | None = MAX_EDGES,
    step: Callable[[str], object] | None = None,
) -> Written:
    """Draw one model: ``{name}_paths`` (surviving paths, channel or layer view,
    see :func:`choose_view`), ``{name}_layers`` (nonzero / alive share per layer)
    and, for an MLP on images given ``input_shape``, ``{name}_pixels``; each as
    PNG (+ ``formats``) and HTML. ``title`` names the model and checkpoint (default:
    the report's model); ``step(text)`` is a context manager factory reporting progress.
    ``.info`` maps each figure name to its info."""
    import contextlib

    step = step or (lambda text: contextlib.nullcontext())
    report = report if report is not None else analyze(graph, flows)
    title = title or report.model
    chosen = choose_view(graph, view)
    written = Written()
    with step(f"drawing the surviving paths ({chosen} view)"):
        if chosen == "layers":
            spec = layer_view_spec(graph, flows, report, title=f"Surviving input→output paths — {title}",
                                   name=f"{name}_paths")
        else:
            spec = paths_spec([(label or summary(report), graph, flows, report)],
                              title=f"Surviving input→output paths — {title}", name=f"{name}_paths",
                              max_edges=max_edges, max_cols=1)
            spec.info["view"] = "channels"
        part = write_figure(spec, out_dir, formats, plotlyjs)
        written += part
        written.info["paths"] = part.info
    with step("drawing the per-layer weights"):
        part = write_figure(layer_bars_spec(report, title=f"Weights per layer — {title}", name=f"{name}_layers"),
                            out_dir, formats, plotlyjs)
        written += part
        written.info["layers"] = part.info
    pixels = input_pixels(graph, flows, input_shape) if input_shape is not None else None
    if pixels is not None:
        with step("drawing the input pixels"):
            part = write_figure(pixels_spec(pixels, title=f"Input pixels on a surviving path\n{title}",
                                            subtitle=summary(report), name=f"{name}_pixels"),
                                out_dir, formats, plotlyjs)
            written += part
            written.info["pixels"] = part.info
    return written


__all__ = ["VIEWS", "choose_view", "input_pixels", "layer_bars", "layer_bars_spec", "layer_view_spec",
           "pixels_spec", "plot_model", "summary"]
