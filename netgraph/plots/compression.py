"""Figures of a pruning comparison: accuracy, effective compression, log phi and
per-layer density against compression, one colour and marker per method everywhere.

Each figure is a pure function of ``records`` returning a
:class:`~netgraph.plots.spec.FigureSpec` (``*_spec``), and a writer that renders
it with both backends. ``records`` are the rows of the comparison results table:
dicts with (some of) the keys ``method``, ``protocol`` ('init' | 'post'),
``target_compression``, ``nominal_compression``, ``effective_compression``,
``seed``, ``accuracy_before_finetune``, ``accuracy_after_finetune``,
``dense_accuracy`` (the dense model that run started from), ``log_phi``,
``disconnected``, ``collapsed_layers``, ``cut_layers`` and ``layers``
({layer: {'density', 'alive_density'}}). Missing values, ``None``, NaN and
infinities are tolerated. Accuracies may be fractions (<= 1) or percentages.
Seeds are averaged: lines show the mean, bands one standard deviation.

Markers with a fixed meaning in every figure: ``X`` the first level where a
layer collapsed (no weight left) while the network stayed connected, a ringed
cross (``circle-x``) the first level where the network disconnected (phi = 0).
Where a quantity does not exist for a disconnected run (log phi, effective
compression) the ringed cross sits in a grey strip on the axis edge.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from netgraph.plots.spec import FigureSpec, Heatmap, HLine, LegendEntry, Line, Panel, Span
from netgraph.plots.style import (
    CUT,
    DENSE,
    WIDTH_IN,
    ZERO_CELL,
    Written,
    grid_shape,
    method_color,
    method_marker,
    sort_methods,
    write_figure,
)

PROTOCOL_TITLES = {"init": "pruned at initialisation", "post": "pruned after training"}
COMPRESSION_LABEL = "compression (total / remaining weights)"
COLLAPSE, DISCONNECTED = "X", "circle-x"
NEUTRAL = "#444444"
STRIP = "#EEEEEE"
_STRIP_ROW = 0.05  # axes fraction per row of pinned markers
OVERLAP = 0.015  # share of the y range under which two curves hide each other


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
    return record.get("log_phi", 0.0) is not None and _num(record.get("log_phi")) == -math.inf


def _over_seeds(records: Sequence[Mapping], what: str = "mean ± std") -> str:
    """'mean ± std over 3 seeds', or 'one seed (no spread)' when there is one."""
    n = len({r.get("seed") for r in records})
    return f"{what} over {n} seeds" if n > 1 else "one seed (no spread shown)" if "std" in what else "one seed"


def _has_collapse(record: Mapping) -> bool:
    return bool(record.get("collapsed_layers"))


def _accuracy_scale(records: Sequence[Mapping], keys: Iterable[str]) -> float:
    finite = [v for r in records for k in keys for v in [_num(r.get(k))] if math.isfinite(v)]
    return 100.0 if finite and max(finite) <= 1.0 + 1e-9 else 1.0


@dataclass
class Stats:
    """One method's values per level in one protocol, averaged over seeds."""

    method: str
    x: np.ndarray  # levels (target compression), ascending
    mean: np.ndarray  # NaN where no finite value
    std: np.ndarray
    n: np.ndarray  # finite values per level
    records: list[list[Mapping]]  # records per level


def level_stats(records: Sequence[Mapping], protocol: str, value) -> list[Stats]:
    """Per method, the mean/std over seeds of ``value(record)`` at every level."""
    by_method: dict[str, dict[float, list[Mapping]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        level = _level(record)
        if str(record.get("protocol", "init")) == protocol and math.isfinite(level) and level > 0:
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
        out.append(Stats(method, np.array(levels), np.array(means), np.array(stds), np.array(counts), groups))
    return out


def first_events(stats: Stats) -> dict[str, int]:
    """Index of the first level where some seed disconnected (``'disconnected'``)
    and where some seed had a collapsed layer but stayed connected (``'collapse'``)."""
    found: dict[str, int] = {}
    for i, group in enumerate(stats.records):
        if "disconnected" not in found and any(_is_disconnected(r) for r in group):
            found["disconnected"] = i
        if "collapse" not in found and any(_has_collapse(r) and not _is_disconnected(r) for r in group):
            found["collapse"] = i
    return found


# --- shared pieces ---------------------------------------------------------------------


def _method_entries(methods: Iterable[str]) -> list[LegendEntry]:
    return [LegendEntry(m, method_color(m), method_marker(m)) for m in sort_methods(methods)]


def _event_entries(kinds: set[str], every: bool = False) -> list[LegendEntry]:
    """Legend items of the collapse / disconnection markers (``every``: each
    disconnected level is marked, not just the first)."""
    entries = []
    if "collapse" in kinds:
        entries.append(LegendEntry("first layer collapse (still connected)", NEUTRAL, COLLAPSE, "none"))
    if "disconnected" in kinds:
        entries.append(LegendEntry("disconnected runs (φ = 0)" if every else "first disconnection (φ = 0)", NEUTRAL,
                                   DISCONNECTED, "none"))
    return entries


def _padded(lo: float, hi: float, log: bool = False, pad: float = 0.06) -> tuple[float, float]:
    if log:
        a, b = _padded(math.log10(lo), math.log10(hi), False, pad)
        return 10**a, 10**b
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return lo - pad * span, hi + pad * span


def _strip(limits: tuple[float, float], rows: int, side: str, log: bool = False):
    """Grow ``limits`` by a strip of ``rows`` marker rows on ``side``; return the new
    limits, the strip's (start, stop) and a function row -> y of that row's markers."""
    lo, hi = (math.log10(v) for v in limits) if log else limits
    frac = _STRIP_ROW * rows + 0.02
    span = (hi - lo) / (1 - frac)
    new_lo, new_hi = (hi - span, hi) if side == "bottom" else (lo, lo + span)
    edge = new_lo if side == "bottom" else new_hi
    sign = 1 if side == "bottom" else -1
    strip = sorted((edge, edge + sign * span * frac))

    def row_y(row: int) -> float:
        y = edge + sign * span * _STRIP_ROW * (row + 0.5 + 0.02 / _STRIP_ROW / 2)
        return 10**y if log else y

    unlog = (lambda v: 10**v) if log else (lambda v: v)
    return (unlog(new_lo), unlog(new_hi)), (unlog(strip[0]), unlog(strip[1])), row_y


def _ticks(limits: tuple[float, float], log: bool = False, avoid: tuple[float, float] | None = None
           ) -> tuple[list[float], list[str]]:
    """Round tick values inside ``limits`` (decades on a log axis, 1/2/2.5/5 steps
    otherwise), leaving out those inside ``avoid`` (a strip that is off the scale)."""
    lo, hi = limits
    if log:
        values = [10.0**k for k in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)]
        labels = [f"{v:g}" if 1 <= v < 1e4 else f"10^{round(math.log10(v))}" for v in values]
    else:
        raw = (hi - lo) / 6
        base = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
        step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= raw)
        values = [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]
        labels = [f"{v:g}".replace("-", "−") for v in values]
    keep = [(v, t) for v, t in zip(values, labels) if avoid is None or not avoid[0] <= v <= avoid[1]]
    return [v for v, _ in keep], [t for _, t in keep]


def _overlap_notes(lines: Sequence[Line], limits: tuple[float, float], log: bool = False) -> list[str]:
    """'a under b' for mean lines at the same levels that never differ by more than
    ``OVERLAP`` of the axis range (``limits``): one hides the other at README size.
    The lower one (drawn first) gets larger hollow markers so it stays visible."""
    def scale(values):
        values = np.asarray(values, float)
        return np.log10(values) if log else values

    tol = OVERLAP * float(np.diff(scale(limits))[0])
    notes: list[str] = []
    ringed: set[int] = set()
    for i, upper in enumerate(lines):
        for lower in lines[:i]:
            xa, xb = np.asarray(lower.x, float), np.asarray(upper.x, float)
            if not len(xa) or len(xa) != len(xb) or not np.allclose(xa, xb):
                continue
            gap = np.abs(scale(lower.y) - scale(upper.y))
            if np.all(gap[np.isfinite(gap)] <= tol):
                worst = float(np.nanmax(gap))
                spread = f"within ×{10 ** worst:.3g}" if log else f"differences ≤ {worst:.2g}"
                notes.append(f"{lower.name} lies under {upper.name}" + (" (identical)" if worst == 0 else
                                                                       f" ({spread})"))
                if id(lower) not in ringed:
                    ringed.add(id(lower))
                    lower.markersize += 4
                    lower.hollow = True
                    if lower.marker is None:  # a bare line: widen and dash it so it shows on both sides
                        lower.linewidth += 2.0
                        lower.linestyle = "dashed"
    return notes


def _hover(method: str, what: str, x, mean, std, n) -> list[str]:
    return [f"{method} {what}<br>{a:.3g}×: {m:.2f} ± {s:.2f} (n={k})" for a, m, s, k in zip(x, mean, std, n)]


# --- accuracy vs compression ------------------------------------------------------------


_ACCURACY_KEYS = {"after": "accuracy_after_finetune", "before": "accuracy_before_finetune"}


def dense_baselines(records: Sequence[Mapping], protocol: str, scale: float = 1.0) -> list[tuple[float, list[str]]]:
    """The dense models the runs of ``protocol`` started from: (accuracy, methods
    starting from it), one entry per distinct dense model (methods whose
    ``dense_accuracy`` agrees seed by seed share one), most methods first."""
    per_method: dict[str, dict[int, float]] = defaultdict(dict)
    for r in records:
        value = _num(r.get("dense_accuracy"))
        if str(r.get("protocol", "init")) == protocol and math.isfinite(value):
            per_method[str(r.get("method", "?"))][int(_num(r.get("seed", 0)) if r.get("seed") is not None else 0)] = value
    groups: dict[tuple, list[str]] = {}
    for method in sort_methods(per_method):
        key = tuple(sorted((s, round(v, 9)) for s, v in per_method[method].items()))
        groups.setdefault(key, []).append(method)
    out = [(float(np.mean([v for _, v in key])) * scale, methods) for key, methods in groups.items()]
    return sorted(out, key=lambda item: -len(item[1]))


_STAGE_TITLES = {
    ("init", "after"): "pruned at initialisation, then trained",
    ("post", "after"): "pruned after training, fine-tuned",
    ("post", "before"): "pruned after training, before fine-tuning",
    ("init", "before"): "pruned at initialisation, before training",
}


def accuracy_spec(
    records: Sequence[Mapping],
    *,
    accuracy: str = "both",
    title: str | None = None,
    name: str = "accuracy_vs_compression",
) -> FigureSpec:
    """Test accuracy (mean ± std over seeds) against compression: a panel per
    protocol and stage. ``accuracy``: 'after' (after the training that follows
    pruning), 'before' (right after pruning) or 'both': then pruned-after-training
    runs get a second, dashed panel before fine-tuning, while the accuracy of a
    network pruned at initialisation before any training (chance) is left out.
    Each panel's solid grey line is the dense model its runs started from: one
    line per distinct dense model (in ``post``, CoNNect- or L1-regularised
    training gives its method its own, drawn in that method's colour), values in
    the panel's subtitle."""
    if accuracy not in ("after", "before", "both"):
        raise ValueError("accuracy must be 'after', 'before' or 'both'")
    stages = ["after", "before"] if accuracy == "both" else [accuracy]
    scale = _accuracy_scale(records, [_ACCURACY_KEYS[k] for k in stages] + ["dense_accuracy"])
    wanted = [(protocol, stage) for protocol in _protocols(records) for stage in stages
              if not (accuracy == "both" and protocol == "init" and stage == "before")]
    panels, methods, events = [], set(), set()
    ys_all: list[float] = []
    pins_all: list[tuple[Panel, str, float, str]] = []
    mean_lines: list[list[Line]] = []
    for protocol, stage in wanted:
        before = stage == "before"
        panel = Panel(title=_STAGE_TITLES.get((protocol, stage), f"{_protocol_title(protocol)} ({stage})"),
                      xlabel=COMPRESSION_LABEL, ylabel="test accuracy (%)", xlog=True)
        key = _ACCURACY_KEYS[stage]
        means: list[Line] = []
        for s in level_stats(records, protocol, lambda r, key=key: _num(r.get(key)) * scale):
            ok = np.isfinite(s.mean)
            color, marker = method_color(s.method), method_marker(s.method)
            line = Line(s.x[ok], s.mean[ok], name=s.method, role=stage, color=color, marker=marker,
                        linestyle="dashed" if before else "solid", linewidth=1.2 if before else 1.6,
                        hollow=before, group=s.method, band=((s.mean - s.std)[ok], (s.mean + s.std)[ok]),
                        hover=_hover(s.method, f"({stage} fine-tuning)", s.x[ok], s.mean[ok], s.std[ok], s.n[ok]))
            panel.add(line)
            means.append(line)
            methods.add(s.method)
            ys_all.extend(list(s.mean[ok] - s.std[ok]) + list(s.mean[ok] + s.std[ok]))
            for event, i in first_events(s).items():
                events.add(event)
                if math.isfinite(s.mean[i]):
                    panel.add(Line([s.x[i]], [s.mean[i]], name=s.method, role=event, color=color,
                                   marker=COLLAPSE if event == "collapse" else DISCONNECTED, linestyle="none",
                                   markersize=10 if event == "collapse" else 11, group=s.method,
                                   hover=[f"{s.method}: first {event} at {s.x[i]:.3g}×"]))
                else:
                    pins_all.append((panel, s.method, float(s.x[i]), event))
        baselines = dense_baselines(records, protocol, scale)
        words = []
        for value, starts in baselines:
            main = starts is baselines[0][1]
            label = "dense" if main else f"dense start of {', '.join(starts)}"
            panel.add(HLine(value, name=f"{label}: {value:.1f}", role="dense",
                            color=DENSE if main else method_color(starts[0]), linestyle="solid", linewidth=1.0))
            words.append(f"{value:.1f}" if main else f"{value:.1f} ({', '.join(starts)})")
            ys_all.append(value)
        if words:
            panel.subtitle = "dense: " + ", ".join(words)
        panels.append(panel)
        mean_lines.append(means)
    limits = _padded(min(ys_all), max(ys_all)) if ys_all else (0.0, 100.0)
    row_y = strip = None
    if pins_all:  # no accuracy to sit on: a strip at the bottom of every panel
        limits, strip, row_y = _strip(limits, 1, "bottom")
        for panel in panels:
            panel.add(Span(*strip, axis="y", color=STRIP, role="strip", text="no accuracy"))
    for panel, means in zip(panels, mean_lines):
        panel.ylim = limits
        panel.yticks = _ticks(limits, avoid=strip)
        panel.notes += _overlap_notes(means, limits)
    for panel, method, x, event in pins_all:
        panel.add(Line([x], [row_y(0)], name=method, role=event, color=method_color(method),
                       marker=COLLAPSE if event == "collapse" else DISCONNECTED, linestyle="none", markersize=10,
                       group=method))
    legend = _method_entries(methods)
    if "before" in stages:
        legend.append(LegendEntry("before fine-tuning (dashed)", NEUTRAL, "o", "dashed", hollow=True, linewidth=1.2))
    legend += _event_entries(events)
    legend.append(LegendEntry("dense model the runs started from", DENSE, None, linewidth=1.0))
    notes = ["Pruned at initialisation: the accuracy before training (chance) is not drawn."] \
        if accuracy == "both" and "init" in _protocols(records) else []
    return FigureSpec(name, title or "Accuracy vs compression", panels,
                      subtitle=_over_seeds(records, "mean ± std (bands)"), cols=2, legend=legend, legend_cols=2,
                      notes=notes,
                      width_in=WIDTH_IN, height_in=4.6 if len(panels) <= 2 else 8.0, sharey=True,
                      info={"dense": {p: dense_baselines(records, p, scale) for p in _protocols(records)}})


def accuracy_vs_compression(records: Sequence[Mapping], out_dir: str | os.PathLike,
                            name: str = "accuracy_vs_compression", *, accuracy: str = "after",
                            title: str | None = None, formats: Sequence[str] = ("png",),
                            plotlyjs: bool | str | os.PathLike = "directory") -> Written:
    """Write :func:`accuracy_spec` as PNG (+ ``formats``) and HTML."""
    return write_figure(accuracy_spec(records, accuracy=accuracy, title=title, name=name), out_dir, formats, plotlyjs)


# --- effective vs nominal compression ------------------------------------------------


def _effective(record: Mapping) -> float:
    value = record.get("effective_compression")
    if value is None:
        return math.inf if _is_disconnected(record) else math.nan
    return _num(value)


def _mean_nominal(group: Sequence[Mapping]) -> float:
    vals = [math.log10(v) for v in (_num(r.get("nominal_compression")) for r in group) if math.isfinite(v) and v > 0]
    return 10 ** float(np.mean(vals)) if vals else math.nan


def effective_spec(records: Sequence[Mapping], *, title: str | None = None,
                   name: str = "effective_vs_nominal") -> FigureSpec:
    """Effective (total / alive) against nominal (total / nonzero) compression,
    log-log: every run a small point, the (log-)mean over seeds per level a line,
    y = x (no dead weights) dashed. Runs with no alive weight (disconnected) sit
    in a strip at the top, one row per method."""
    protocols = _protocols(records)
    data: dict[tuple[str, str], dict] = {}
    xs: list[float] = []
    ys: list[float] = []
    for protocol in protocols:
        rows = [r for r in records if str(r.get("protocol", "init")) == protocol]
        for method in sort_methods(str(r.get("method", "?")) for r in rows):
            pts = [(_num(r.get("nominal_compression")), _effective(r), r) for r in rows
                   if str(r.get("method", "?")) == method]
            pts = [(x, y, r) for x, y, r in pts if math.isfinite(x) and x > 0]
            finite = [(x, y, r) for x, y, r in pts if math.isfinite(y) and y > 0]
            lost = sorted({x for x, y, _ in pts if y == math.inf})
            mean = level_stats([r for _, _, r in finite], protocol, lambda r: math.log10(_effective(r)))
            if mean:
                lx = np.array([_mean_nominal(g) for g in mean[0].records])
                order = np.argsort(lx)
                line = (lx[order], 10 ** mean[0].mean[order])
            else:
                line = (np.zeros(0), np.zeros(0))
            data[(protocol, method)] = {"points": finite, "lost": lost, "line": line}
            xs += [x for x, _, _ in finite] + lost
            ys += [y for _, y, _ in finite]
    xspan = (min(xs) / 1.6, max(xs) * 1.6) if xs else (1.0, 10.0)
    span = (min(xspan[0], min(ys) / 1.6), max(xspan[1], max(ys) * 1.6)) if ys else xspan
    lost_methods = sort_methods({m for (_, m), d in data.items() if d["lost"]})
    ylim, strip, row_y = _strip(span, len(lost_methods), "top", log=True) if lost_methods else (span, None, None)
    panels = []
    for protocol in protocols:
        panel = Panel(title=_protocol_title(protocol), xlabel="nominal compression (total / nonzero)",
                      ylabel="effective compression (total / alive)", xlog=True, ylog=True, xlim=xspan, ylim=ylim,
                      xticks=_ticks(xspan, log=True), yticks=_ticks(ylim, log=True, avoid=strip))
        panel.add(Line(list(span), list(span), name="y = x", role="reference", color=DENSE, linestyle="dashed",
                       linewidth=1.0))
        if strip is not None:
            panel.add(Span(*strip, axis="y", color=STRIP, role="strip", text="no alive weight"))
        means = []
        for (proto, method), d in data.items():
            if proto != protocol:
                continue
            color, marker = method_color(method), method_marker(method)
            if d["points"]:
                panel.add(Line([p[0] for p in d["points"]], [p[1] for p in d["points"]], name=method, role="run",
                               color=color, marker=marker, linestyle="none", markersize=3.5, alpha=0.5, group=method,
                               hover=[f"{method} · seed {r.get('seed', '?')}<br>nominal {x:.3g}×, effective {y:.3g}×"
                                      for x, y, r in d["points"]]))
            if len(d["line"][0]):
                means.append(Line(*d["line"], name=method, role="mean", color=color, group=method))
                panel.add(means[-1])
            if d["lost"]:
                panel.add(Line(d["lost"], [row_y(lost_methods.index(method))] * len(d["lost"]), name=method,
                               role="disconnected", color=color, marker=DISCONNECTED, linestyle="none",
                               markersize=9, group=method,
                               hover=[f"{method}: disconnected at nominal {x:.3g}×" for x in d["lost"]]))
        panel.notes += _overlap_notes(means, ylim, log=True)
        panels.append(panel)
    legend = _method_entries(m for _, m in data)
    legend.append(LegendEntry("y = x (no dead weights)", DENSE, None, "dashed", linewidth=1.0))
    legend += _event_entries({"disconnected"} if lost_methods else set(), every=True)
    return FigureSpec(name, title or "Effective vs nominal compression", panels,
                      subtitle="points: runs; lines: " + _over_seeds(records, "(log-)mean").replace(
                          "one seed", "the one seed's runs"), legend=legend, width_in=WIDTH_IN,
                      height_in=4.6, sharey=True)


def effective_vs_nominal(records: Sequence[Mapping], out_dir: str | os.PathLike, name: str = "effective_vs_nominal",
                         *, title: str | None = None, formats: Sequence[str] = ("png",),
                         plotlyjs: bool | str | os.PathLike = "directory") -> Written:
    """Write :func:`effective_spec` as PNG (+ ``formats``) and HTML."""
    return write_figure(effective_spec(records, title=title, name=name), out_dir, formats, plotlyjs)


# --- log phi vs compression ---------------------------------------------------------


def log_phi_spec(records: Sequence[Mapping], *, title: str | None = None,
                 name: str = "log_phi_vs_compression") -> FigureSpec:
    """log phi (natural log of the input->output path sum) against compression,
    mean ± std over the connected seeds per method, one panel per protocol; X at
    a method's first collapsed-but-connected level; disconnected runs (phi = 0,
    no log) as ringed crosses in a strip at the bottom, one row per method."""
    protocols = _protocols(records)

    def value(r: Mapping) -> float:
        return math.nan if _is_disconnected(r) else _num(r.get("log_phi"))

    stats = {p: level_stats(records, p, value) for p in protocols}
    finite = [v for ss in stats.values() for s in ss for v in np.concatenate([s.mean - s.std, s.mean + s.std])
              if math.isfinite(v)]
    limits = _padded(min(finite), max(finite)) if finite else (0.0, 1.0)
    lost_methods = sort_methods({s.method for ss in stats.values() for s in ss
                                 if any(_is_disconnected(r) for g in s.records for r in g)})
    row_y = None
    strip = None
    if lost_methods:
        limits, strip, row_y = _strip(limits, len(lost_methods), "bottom")
    panels, events = [], set()
    for protocol in protocols:
        panel = Panel(title=_protocol_title(protocol), xlabel=COMPRESSION_LABEL,
                      ylabel="log φ (natural log of the path sum)", xlog=True, ylim=limits,
                      yticks=_ticks(limits, avoid=strip))
        if strip is not None:
            panel.add(Span(*strip, axis="y", color=STRIP, role="strip", text="φ = 0"))
        means = []
        for s in stats[protocol]:
            ok = np.isfinite(s.mean)
            color = method_color(s.method)
            means.append(Line(s.x[ok], s.mean[ok], name=s.method, role="mean", color=color,
                              marker=method_marker(s.method), group=s.method,
                              band=((s.mean - s.std)[ok], (s.mean + s.std)[ok]),
                              hover=_hover(s.method, "log φ", s.x[ok], s.mean[ok], s.std[ok], s.n[ok])))
            panel.add(means[-1])
            found = first_events(s)
            if "collapse" in found and math.isfinite(s.mean[found["collapse"]]):
                i = found["collapse"]
                events.add("collapse")
                panel.add(Line([s.x[i]], [s.mean[i]], name=s.method, role="collapse", color=color, marker=COLLAPSE,
                               linestyle="none", markersize=10, group=s.method))
            lost = [(x, sum(_is_disconnected(r) for r in g), len(g)) for x, g in zip(s.x, s.records)
                    if any(_is_disconnected(r) for r in g)]
            if lost:
                events.add("disconnected")
                row = lost_methods.index(s.method)
                panel.add(Line([x for x, _, _ in lost], [row_y(row)] * len(lost), name=s.method,
                               role="disconnected", color=color, marker=DISCONNECTED, linestyle="none",
                               markersize=9, group=s.method,
                               hover=[f"{s.method}: {k}/{n} runs disconnected at {x:.3g}× (φ = 0)"
                                      for x, k, n in lost]))
        panel.notes += _overlap_notes(means, limits)
        panels.append(panel)
    legend = _method_entries(s.method for ss in stats.values() for s in ss) + _event_entries(events, every=True)
    return FigureSpec(name, title or "Path sum vs compression", panels,
                      subtitle=_over_seeds(records, "mean ± std (bands) of the connected runs"),
                      legend=legend, width_in=WIDTH_IN, height_in=4.6, sharey=True)


def log_phi_vs_compression(records: Sequence[Mapping], out_dir: str | os.PathLike,
                           name: str = "log_phi_vs_compression", *, title: str | None = None,
                           formats: Sequence[str] = ("png",),
                           plotlyjs: bool | str | os.PathLike = "directory") -> Written:
    """Write :func:`log_phi_spec` as PNG (+ ``formats``) and HTML."""
    return write_figure(log_phi_spec(records, title=title, name=name), out_dir, formats, plotlyjs)


# --- per-layer density heatmap ------------------------------------------------------


def _layer_names(records: Sequence[Mapping]) -> list[str]:
    names: dict[str, None] = {}
    for r in records:
        for layer in r.get("layers") or {}:
            names.setdefault(layer, None)
    return list(names)


def _short(layer: str) -> str:
    return layer.removesuffix(".weight")


def level_label(x: float) -> str:
    """'10', '100' for whole decades below 10^4, else '10^1.5'."""
    exponent = math.log10(x)
    if abs(exponent - round(exponent)) < 1e-9 and x < 1e4:
        return f"{x:g}"
    return f"10^{exponent:.3g}"


def _heatmap_grid(rows: Sequence[Mapping], method: str, layers: list[str], levels: list[float], density: str):
    grid = np.full((len(layers), len(levels)), np.nan)
    index = {lv: j for j, lv in enumerate(levels)}
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for r in rows:
        j = index.get(round(_level(r), 9))
        if str(r.get("method", "?")) != method or j is None:
            continue
        for i, layer in enumerate(layers):
            value = _num(((r.get("layers") or {}).get(layer) or {}).get(density))
            if math.isfinite(value):
                cells[(i, j)].append(value)
    for (i, j), vals in cells.items():
        grid[i, j] = float(np.mean(vals))
    return grid


def density_specs(records: Sequence[Mapping], *, methods: Sequence[str] | None = None, protocol: str | None = None,
                  density: str = "alive_density", title: str | None = None,
                  name: str = "layer_density") -> list[FigureSpec]:
    """Per-layer remaining density across compression levels: one heatmap per
    method (layers x levels, mean over seeds, log colour scale), zero cells (a
    cut layer for ``alive_density``, a collapsed one for ``density``) in grey
    with a cross. One figure per protocol (``{name}_{protocol}`` when several)."""
    if density not in ("alive_density", "density"):
        raise ValueError("density must be 'alive_density' or 'density'")
    protocols = [protocol] if protocol is not None else _protocols(records) or ["init"]
    what = "alive" if density == "alive_density" else "nonzero"
    zero = "cut" if what == "alive" else "collapsed"
    specs = []
    for proto in protocols:
        rows = [r for r in records if str(r.get("protocol", "init")) == proto]
        chosen = list(methods) if methods is not None else sort_methods(str(r.get("method", "?")) for r in rows)
        layers = _layer_names(rows)
        levels = sorted({round(_level(r), 9) for r in rows if math.isfinite(_level(r)) and _level(r) > 0})
        grids = [_heatmap_grid(rows, m, layers, levels, density) for m in chosen]
        positive = [g[g > 0].min() for g in grids if (g > 0).any()]
        vmin = 10 ** math.floor(math.log10(max(min(positive), 1e-4))) if positive else 1e-3
        n_rows, n_cols = grid_shape(len(chosen), 4 if len(layers) <= 20 else 3)
        cell_h = 0.16 if len(layers) > 12 else 0.22
        panels = []
        for k, (method, grid) in enumerate(zip(chosen, grids)):
            y_step = max(1, math.ceil(len(layers) / 30))
            panels.append(Panel(
                title=method, title_color=method_color(method), grid=False,
                xlabel="compression (×)" if k >= len(chosen) - n_cols else "",
                ylabel="layer (input → output)" if k % n_cols == 0 else "",
                xticks=(list(range(len(levels))), [level_label(v) for v in levels]), xtick_rotation=45,
                yticks=(list(range(0, len(layers), y_step)), [_short(v) for v in layers][::y_step]),
                marks=[Heatmap(grid, [level_label(v) for v in levels], [_short(v) for v in layers], vmin,
                               colorbar=f"{what} / total weights (log scale)", zero_color=ZERO_CELL,
                               zero_mark=CUT)]))
        file_name = name if len(protocols) == 1 else f"{name}_{proto}"
        specs.append(FigureSpec(
            file_name, title or f"Remaining {what} weights per layer ({_protocol_title(proto)})", panels,
            subtitle=_over_seeds(rows, "mean"), cols=n_cols,
            legend=[LegendEntry(f"0: layer {zero}", ZERO_CELL, patch=True, edgecolor=CUT),
                    LegendEntry("no data", "#FFFFFF", patch=True, edgecolor="#BBBBBB")],
            width_in=WIDTH_IN, height_in=min(1.3 + n_rows * (1.0 + cell_h * max(len(layers), 1)), 12.0),
            info={"methods": chosen, "layers": layers, "levels": levels}))
    return specs


def layer_density_heatmap(records: Sequence[Mapping], out_dir: str | os.PathLike, name: str = "layer_density", *,
                          methods: Sequence[str] | None = None, protocol: str | None = None,
                          density: str = "alive_density", title: str | None = None,
                          formats: Sequence[str] = ("png",),
                          plotlyjs: bool | str | os.PathLike = "directory") -> Written:
    """Write every :func:`density_specs` figure as PNG (+ ``formats``) and HTML."""
    written = Written()
    for spec in density_specs(records, methods=methods, protocol=protocol, density=density, title=title, name=name):
        part = write_figure(spec, out_dir, formats, plotlyjs)
        written.extend(part)
        written.info[spec.name] = part.info
    return written


__all__ = ["accuracy_spec", "accuracy_vs_compression", "dense_baselines", "density_specs", "effective_spec",
           "effective_vs_nominal", "first_events", "layer_density_heatmap", "level_stats", "log_phi_spec",
           "log_phi_vs_compression"]
