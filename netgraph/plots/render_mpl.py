"""Draw a :class:`~netgraph.plots.spec.FigureSpec` with matplotlib (PNG, SVG, PDF).

The renderer adds nothing to the description: every mark, label, limit and note
comes from the spec; this module only maps them onto matplotlib's object API
(Agg, no pyplot state).
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
from netgraph.plots.style import FONT, mpl_style, new_figure

_LINESTYLES = {"solid": "-", "dashed": "--", "dotted": ":", "dashdot": "-.", "none": ""}


def _marker(code: str | None):
    """matplotlib marker for a spec code; ``circle-x`` is a ring with a cross."""
    if code != "circle-x":
        return code
    from matplotlib.path import Path

    circle = Path.unit_circle()
    d = 0.7071
    cross = Path([(-d, -d), (d, d), (-d, d), (d, -d)], [Path.MOVETO, Path.LINETO, Path.MOVETO, Path.LINETO])
    return Path.make_compound_path(circle, cross)


def tick_text(label: str) -> str:
    """``10^1.5`` as mathtext (a superscript)."""
    return re.sub(r"10\^([-+]?[\d.]+)", r"$10^{\1}$", label)


def _line(ax, mark: Line) -> None:
    x, y = np.asarray(mark.x, float), np.asarray(mark.y, float)
    ring = mark.marker == "circle-x"
    face = "none" if (mark.hollow or ring) else mark.color
    ax.plot(x, y, color=mark.color, marker=_marker(mark.marker), ls=_LINESTYLES[mark.linestyle], lw=mark.linewidth,
            ms=mark.markersize, mfc=face, mec=mark.color if (mark.hollow or ring) else "white",
            mew=1.3 if (mark.hollow or ring) else 0.6, alpha=mark.alpha, zorder=4 if mark.linestyle == "none" else 3,
            clip_on=mark.linestyle != "none")
    if mark.band is not None:
        lo, hi = (np.asarray(v, float) for v in mark.band)
        ax.fill_between(x, lo, hi, color=mark.color, alpha=0.13, lw=0, zorder=2)


def _panel(ax, panel: Panel, show_ylabel: bool) -> None:
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import LinearSegmentedColormap, ListedColormap, LogNorm
    from matplotlib.ticker import NullLocator
    from matplotlib.transforms import blended_transform_factory

    if panel.xlog:
        ax.set_xscale("log")
    if panel.ylog:
        ax.set_yscale("log")
    for mark in panel.marks:
        if isinstance(mark, Span):
            span = ax.axvspan if mark.axis == "x" else ax.axhspan
            span(mark.start, mark.stop, color=mark.color, alpha=mark.alpha, lw=0, zorder=0)
            if mark.text and mark.axis == "x":
                ax.text((mark.start + mark.stop) / 2, 0.995, mark.text, rotation=90, ha="center", va="top",
                        transform=blended_transform_factory(ax.transData, ax.transAxes), color=mark.text_color,
                        fontsize=FONT - 2, fontweight="bold", zorder=5)
            elif mark.text:
                ax.text(0.01, (mark.start + mark.stop) / 2, mark.text, ha="left", va="center",
                        transform=blended_transform_factory(ax.transAxes, ax.transData), color=mark.text_color,
                        fontsize=FONT - 3, zorder=1)
        elif isinstance(mark, Segments) and len(mark):
            segs = np.stack([np.stack([mark.x0, mark.y0], 1), np.stack([mark.x1, mark.y1], 1)], 1)
            ax.add_collection(LineCollection(segs, colors=mark.color, linewidths=mark.linewidth, alpha=mark.alpha,
                                             zorder=1 if mark.role == "dead" else 2, capstyle="round",
                                             rasterized=len(mark) > 2000))
        elif isinstance(mark, Points) and len(mark):
            size = np.asarray(mark.size, float) ** 2
            if mark.hollow:
                ax.scatter(mark.x, mark.y, s=size, facecolors="white", edgecolors=mark.edgecolor or mark.color,
                           marker=_marker(mark.marker), linewidths=0.6, zorder=3, rasterized=len(mark) > 3000)
            else:
                ax.scatter(mark.x, mark.y, s=size, c=mark.color, marker=_marker(mark.marker),
                           edgecolors=mark.edgecolor or "none", linewidths=0.5 if mark.edgecolor else 0, zorder=4,
                           rasterized=len(mark) > 3000)
        elif isinstance(mark, Line):
            _line(ax, mark)
        elif isinstance(mark, HLine):
            ax.axhline(mark.y, color=mark.color, ls=_LINESTYLES[mark.linestyle], lw=mark.linewidth, zorder=1)
        elif isinstance(mark, Text):
            if mark.x is None:
                ax.text(0.995, mark.y, mark.text, transform=blended_transform_factory(ax.transAxes, ax.transData),
                        ha="right", va=mark.va, fontsize=mark.size, color=mark.color, zorder=6)
            else:
                ax.text(mark.x, mark.y, mark.text, ha=mark.ha, va=mark.va, fontsize=mark.size, color=mark.color,
                        zorder=6, clip_on=False)
        elif isinstance(mark, Heatmap):
            cmap = colormaps["viridis"].with_extremes(bad=(1, 1, 1, 0))
            shown = np.where(mark.z > 0, np.maximum(mark.z, mark.vmin), np.nan)
            ax._heat = ax.imshow(np.ma.masked_invalid(shown), aspect="auto", cmap=cmap,
                                 norm=LogNorm(mark.vmin, mark.vmax), interpolation="nearest")
            ax.imshow(np.ma.masked_where(mark.z != 0, np.ones_like(mark.z)), aspect="auto",
                      cmap=ListedColormap([mark.zero_color]), interpolation="nearest")
            zi, zj = np.nonzero(mark.z == 0)
            if len(mark.y_labels) <= 20:
                ax.scatter(zj, zi, marker="x", s=14, color=mark.zero_mark, lw=1.0)
            ax._colorbar_label = mark.colorbar
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.tick_params(length=0)
        elif isinstance(mark, Image):
            cmap = LinearSegmentedColormap.from_list("pixels", [mark.low, mark.high])
            ax._heat = ax.imshow(mark.pixels, cmap=cmap, vmin=0, vmax=mark.vmax, interpolation="nearest")
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color("#999999")
            ax._colorbar_label = mark.colorbar
    if panel.xlim:
        ax.set_xlim(panel.xlim)
    if panel.ylim:
        ax.set_ylim(panel.ylim)
    if panel.yreverse:
        ax.invert_yaxis()
    if panel.xticks is not None:
        rot = panel.xtick_rotation
        ax.set_xticks(panel.xticks[0], [tick_text(t) for t in panel.xticks[1]], rotation=rot, ha="right" if rot else "center",
                      rotation_mode="anchor", fontsize=FONT - 2)
        ax.xaxis.set_minor_locator(NullLocator())
    if panel.yticks is not None:
        ax.set_yticks(panel.yticks[0], [tick_text(t) for t in panel.yticks[1]], fontsize=FONT - 2)
        ax.yaxis.set_minor_locator(NullLocator())
    if panel.hide_yaxis:
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
    if panel.grid:
        ax.grid(True, which="major", color="#E5E5E5", lw=0.6)
        ax.set_axisbelow(True)
    ax.set_xlabel(panel.xlabel)
    if show_ylabel:
        ax.set_ylabel(panel.ylabel)
    head = tick_text("\n".join([t for t in (panel.subtitle, *panel.notes) if t]))
    if panel.title:
        ax.set_title(tick_text(panel.title), color=panel.title_color, fontweight="bold", fontsize=FONT,
                     pad=6 + 11 * (head.count("\n") + 1) if head else 6)
    if head:
        ax.text(0.5, 1.01, head, transform=ax.transAxes, ha="center", va="bottom", fontsize=FONT - 2,
                color="#333333", linespacing=1.15)


def _handle(entry: LegendEntry):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if entry.patch:
        return Patch(facecolor=entry.color, edgecolor=entry.edgecolor or entry.color, alpha=entry.alpha,
                     label=entry.label)
    ring = entry.marker == "circle-x"
    return Line2D([], [], color=entry.color, marker=_marker(entry.marker), ls=_LINESTYLES[entry.linestyle],
                  lw=entry.linewidth, alpha=entry.alpha, mfc="none" if (entry.hollow or ring) else entry.color,
                  mec=entry.color, mew=1.3 if (entry.hollow or ring) else 0.6, ms=7 if ring else 6, label=entry.label)


def to_matplotlib(spec: FigureSpec):
    """The matplotlib Figure of ``spec`` (Agg)."""
    rows, cols = spec.grid
    with mpl_style():
        fig = new_figure(spec.width_in, spec.height_in)
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False, sharey=spec.sharey)).ravel()
        for i, (ax, panel) in enumerate(zip(axes, spec.panels)):
            same = i % cols and spec.panels[i - i % cols].ylabel == panel.ylabel
            _panel(ax, panel, show_ylabel=not same)
        heated = [ax for ax in axes if getattr(ax, "_colorbar_label", "")]
        if heated:  # one colour bar for every image panel (they share one scale)
            bar = fig.colorbar(heated[0]._heat, ax=list(axes[: len(spec.panels)]), shrink=0.8, pad=0.02)
            bar.set_label(heated[0]._colorbar_label, fontsize=FONT - 2)
        for ax in axes[len(spec.panels):]:
            ax.set_visible(False)
        if not spec.panels:
            axes[0].set_visible(True)
            axes[0].text(0.5, 0.5, "no data", transform=axes[0].transAxes, ha="center", color="#777777")
        title = spec.title + (f"\n{spec.subtitle}" if spec.subtitle else "")
        fig.suptitle(tick_text(title), fontsize=FONT + 1)
        if spec.legend:
            handles = [_handle(e) for e in spec.legend]
            ncols = spec.legend_cols or min(len(spec.legend), 4)
            if len(spec.panels) < len(axes):  # an empty grid cell: the legend goes there
                spare = axes[len(spec.panels)]
                spare.set_visible(True)
                spare.axis("off")
                spare.legend(handles=handles, loc="center", ncols=ncols, fontsize=FONT - 1, frameon=False)
            else:
                fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=FONT - 1)
        if spec.notes:
            fig.text(0.01, 0.0, "\n".join(spec.notes), ha="left", va="bottom", fontsize=FONT - 3, color="#444444")
            reserve = 0.22 * len(spec.notes) / spec.height_in  # ~0.22 in per line of notes
            fig.get_layout_engine().set(rect=(0, reserve, 1, 1 - reserve))
    return fig


__all__ = ["to_matplotlib"]
