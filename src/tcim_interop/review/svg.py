"""The review report's plots as inline SVG: readable printed in grey (each series has its own marker,
line dash and fill pattern, never colour alone), accessible (role="img", <title>, <desc>, aria-label),
and the same bytes for the same numbers (coordinates with one decimal)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

# per series: stroke, dash, marker, marker fill
STYLES = (("#1f3f6e", "", "circle", "#1f3f6e"), ("#8c3b00", "7 4", "square", "#ffffff"),
          ("#222222", "2 3", "triangle", "#888888"), ("#4b6b2f", "10 3 2 3", "diamond", "#ffffff"))
LINE_W, LINE_H = 640, 360
FLOW_W = 760


def _f(x: float) -> str:
    return f"{x:.1f}"


def _open(uid: str, width: int, height: int, title: str, desc: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="{uid}" class="plot" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
            f'aria-labelledby="{uid}-t {uid}-d"><title id="{uid}-t">{escape(title)}</title>'
            f'<desc id="{uid}-d">{escape(desc)}</desc><rect width="{width}" height="{height}" fill="#ffffff"/>')


def _text(x: float, y: float, s: str, anchor: str = "middle", size: int = 12, weight: str = "normal") -> str:
    return (f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" font-size="{size}" '
            f'font-weight="{weight}">{escape(s)}</text>')


def marker(kind: str, x: float, y: float, stroke: str, fill: str) -> str:
    if kind == "circle":
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="4" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
    if kind == "square":
        return f'<rect x="{_f(x - 4)}" y="{_f(y - 4)}" width="8" height="8" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
    pts = ((x, y - 5), (x + 5, y + 4), (x - 5, y + 4)) if kind == "triangle" else (
        (x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y))
    return (f'<polygon points="{" ".join(f"{_f(a)},{_f(b)}" for a, b in pts)}" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.5"/>')


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    raw = (high - low) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    t = start
    while t <= high + step * 1e-9 or len(ticks) < 2:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _tick_label(t: float) -> str:
    return f"{t:g}" if abs(t) >= 1e-9 else "0"


@dataclass(frozen=True)
class SeriesPoint:
    x: float        # visit number
    mean: float
    low: float | None
    high: float | None


def line_plot(uid: str, title: str, desc: str, visits: list[tuple[float, str]], series: dict[str, list[SeriesPoint]],
              ylabel: str, grey_lines: list[list[tuple[float, float]]] | None = None, zero_line: bool = False) -> str:
    """Means with 95% interval bars per visit (categorical x axis), one style per series, and the
    subjects' own values as thin grey lines behind them."""
    left, right, top, bottom = 64, 150, 34, 56
    pw, ph = LINE_W - left - right, LINE_H - top - bottom
    xs = {vn: left + pw * (i + 0.5) / len(visits) for i, (vn, _) in enumerate(visits)}
    values = [v for pts in series.values() for p in pts for v in (p.mean, p.low, p.high) if v is not None]
    values += [v for line in grey_lines or [] for _, v in line]
    ticks = nice_ticks(min(values + ([0.0] if zero_line else [])), max(values + ([0.0] if zero_line else [])))
    lo, hi = ticks[0], ticks[-1]

    def y(v: float) -> float:
        return top + ph * (hi - v) / (hi - lo)

    out = [_open(uid, LINE_W, LINE_H, title, desc), _text(left + pw / 2, 18, title, size=13, weight="bold")]
    for t in ticks:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{_f(y(t))}" y2="{_f(y(t))}" stroke="#dddddd"/>')
        out.append(_text(left - 6, y(t) + 4, _tick_label(t), anchor="end", size=11))
    if zero_line and lo < 0 < hi:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{_f(y(0))}" y2="{_f(y(0))}" stroke="#000000" stroke-dasharray="1 2"/>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#000000"/>')
    for vn, label in visits:
        out.append(_text(xs[vn], top + ph + 16, label, size=10))
    out.append(_text(left + pw / 2, LINE_H - 12, "Visit", size=11))
    out.append(f'<text x="14" y="{_f(top + ph / 2)}" text-anchor="middle" font-size="11" '
               f'transform="rotate(-90 14 {_f(top + ph / 2)})">{escape(ylabel)}</text>')
    for line in grey_lines or []:
        drawn = " ".join(f"{_f(xs[a])},{_f(y(b))}" for a, b in line if a in xs)
        out.append(f'<polyline class="subject" points="{drawn}" fill="none" stroke="#b0b0b0" stroke-width="0.6"/>')
    dodge = 10.0
    for i, (name, pts) in enumerate(series.items()):
        stroke, dash, kind, fill = STYLES[i % len(STYLES)]
        off = (i - (len(series) - 1) / 2) * dodge
        coords = [(xs[p.x] + off, p) for p in pts if p.x in xs]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="series"><polyline points="{" ".join(f"{_f(cx)},{_f(y(p.mean))}" for cx, p in coords)}" '
                   f'fill="none" stroke="{stroke}" stroke-width="2"{dash_attr}/>')
        for cx, p in coords:
            if p.low is not None and p.high is not None:
                out.append(f'<path d="M{_f(cx)} {_f(y(p.low))}V{_f(y(p.high))}M{_f(cx - 4)} {_f(y(p.low))}'
                           f'H{_f(cx + 4)}M{_f(cx - 4)} {_f(y(p.high))}H{_f(cx + 4)}" stroke="{stroke}" fill="none"/>')
            out.append(marker(kind, cx, y(p.mean), stroke, fill))
        ly = top + 14 + 20 * i
        lx = left + pw + 12
        out.append(f'<line x1="{lx}" x2="{lx + 28}" y1="{ly}" y2="{ly}" stroke="{stroke}" stroke-width="2"{dash_attr}/>')
        out.append(marker(kind, lx + 14, ly, stroke, fill))
        out.append(_text(lx + 34, ly + 4, name, anchor="start", size=11) + "</g>")
    if grey_lines:
        ly = top + 14 + 20 * len(series)
        lx = left + pw + 12
        out.append(f'<line x1="{lx}" x2="{lx + 28}" y1="{ly}" y2="{ly}" stroke="#b0b0b0"/>')
        out.append(_text(lx + 34, ly + 4, "one subject", anchor="start", size=11))
    out.append(_text(left + pw + 12, top + 14 + 20 * (len(series) + 1), "bars: 95% CI (t)", anchor="start", size=10))
    out.append("</svg>")
    return "".join(out)


PATTERNS = (("solid", '<rect width="6" height="6" fill="#404040"/>'),
            ("hatch", '<rect width="6" height="6" fill="#ffffff"/><path d="M0 6L6 0" stroke="#404040" stroke-width="1.5"/>'),
            ("dots", '<rect width="6" height="6" fill="#ffffff"/><circle cx="3" cy="3" r="1.2" fill="#404040"/>'))


def stacked_bars(uid: str, title: str, desc: str, rows: list[tuple[str, list[int]]], parts: list[str]) -> str:
    """Horizontal stacked bars, one per row (e.g. a visit), each part with its own fill pattern."""
    left, right, top, bar = 110, 20, 40, 20
    width = 640
    height = top + len(rows) * (bar + 10) + 50
    pw = width - left - right
    total = max((sum(v) for _, v in rows), default=1) or 1
    out = [_open(uid, width, height, title, desc), "<defs>"]
    for name, body in PATTERNS[:len(parts)]:
        out.append(f'<pattern id="{uid}-{name}" width="6" height="6" patternUnits="userSpaceOnUse">{body}</pattern>')
    out.append("</defs>" + _text(width / 2, 18, title, size=13, weight="bold"))
    for i, (label, vals) in enumerate(rows):
        yy = top + i * (bar + 10)
        out.append(_text(left - 6, yy + 14, label, anchor="end", size=11))
        x = float(left)
        for j, v in enumerate(vals):
            w = pw * v / total
            if w > 0:
                out.append(f'<rect x="{_f(x)}" y="{yy}" width="{_f(w)}" height="{bar}" fill="url(#{uid}-{PATTERNS[j][0]})" '
                           f'stroke="#000000" stroke-width="0.8"/>')
            x += w
    ly = top + len(rows) * (bar + 10) + 14
    for j, name in enumerate(parts):
        lx = left + j * 170
        out.append(f'<rect x="{lx}" y="{ly}" width="16" height="12" fill="url(#{uid}-{PATTERNS[j][0]})" stroke="#000000"/>')
        out.append(_text(lx + 22, ly + 11, name, anchor="start", size=11))
    out.append("</svg>")
    return "".join(out)


def wrap(lines: list[str], width: float) -> list[str]:
    """Lines broken between words to fit a box `width` pixels wide (12px text, ~6.6px a character)."""
    most = max(int((width - 8) / 6.6), 8)
    out = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            if current and len(current) + 1 + len(word) > most:
                out.append(current)
                current = "  " + word
            else:
                current = f"{current} {word}" if current else word
        out.append(current)
    return out


@dataclass(frozen=True)
class Box:
    lines: list[str]
    emphasis: bool = False


def flow_diagram(uid: str, title: str, desc: str, trunk: list[Box], exclusions: dict[int, Box],
                 columns: list[list[Box]]) -> str:
    """A CONSORT-style diagram: a trunk of boxes down the middle (screened, randomized), side boxes for
    those leaving the trunk (screen failures), then one column of boxes per arm."""
    bw, lh, gap = 240, 15, 26
    cx = FLOW_W / 2
    n = max(len(columns), 1)
    cw = int(min(bw, (FLOW_W - 20 * (n + 1)) / n))

    def height(b: Box, w: int = bw) -> int:
        return 12 + lh * len(wrap(b.lines, w))

    def box(x: float, y: float, b: Box, w: int = bw) -> str:
        parts = [f'<rect x="{_f(x)}" y="{_f(y)}" width="{w}" height="{height(b, w)}" fill="#ffffff" stroke="#000000" '
                 f'stroke-width="{2 if b.emphasis else 1}"/>']
        for i, s in enumerate(wrap(b.lines, w)):
            parts.append(_text(x + w / 2, y + 6 + lh * (i + 0.8), s, size=12, weight="bold" if i == 0 else "normal"))
        return "".join(parts)

    arrow = 'marker-end="url(#' + uid + '-arrow)"'
    out, y = [], 40.0
    for i, b in enumerate(trunk):
        out.append(box(cx - bw / 2, y, b))
        bottom = y + height(b)
        if i in exclusions:
            mid = bottom + gap
            ex = exclusions[i]
            out.append(f'<path d="M{_f(cx)} {_f(mid)}H{_f(cx + bw / 2 + 20)}" stroke="#000000" {arrow}/>')
            out.append(box(cx + bw / 2 + 24, mid - height(ex, 200) / 2, ex, 200))
            y = mid + max(gap, height(ex, 200) / 2 + 8)
        else:
            y = bottom + gap
        if i < len(trunk) - 1 or columns:
            out.append(f'<path d="M{_f(cx)} {_f(bottom)}V{_f(y - 2)}" stroke="#000000" {arrow}/>')
    colx = [20 + (FLOW_W - 20 * (n + 1) - cw * n) / 2 + i * (cw + 20) for i in range(len(columns))]
    if columns:
        out.append(f'<path d="M{_f(colx[0] + cw / 2)} {_f(y - 14)}H{_f(colx[-1] + cw / 2)}" stroke="#000000"/>')
    bottom_all = y
    for x, col in zip(colx, columns, strict=True):
        yy = y
        out.append(f'<path d="M{_f(x + cw / 2)} {_f(y - 14)}V{_f(y - 2)}" stroke="#000000" {arrow}/>')
        for j, b in enumerate(col):
            out.append(box(x, yy, b, cw))
            yy += height(b, cw)
            if j < len(col) - 1:
                out.append(f'<path d="M{_f(x + cw / 2)} {_f(yy)}V{_f(yy + gap - 2)}" stroke="#000000" {arrow}/>')
                yy += gap
        bottom_all = max(bottom_all, yy)
    total_h = int(bottom_all + 20)
    head = _open(uid, FLOW_W, total_h, title, desc)
    defs = (f'<defs><marker id="{uid}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto"><path d="M0 0L10 5L0 10z" fill="#000000"/></marker></defs>')
    return head + defs + _text(FLOW_W / 2, 22, title, size=13, weight="bold") + "".join(out) + "</svg>"
