"""Charts as inline SVG, drawn on the server: no script, no library, no request to anyone
(the admin works with no internet access, under a CSP that allows no inline style).

Pure Python, no Django. Every element carries a class and no style: the colours come
from a stylesheet (backend/static/site/dashboard.css) and follow the admin's CSS
variables, so a chart follows the admin's light or dark theme. Each bar has a <title>
(the browser's tooltip) with its exact figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

# The drawing's own units; the SVG scales to its box's width (CSS), the text with it.
WIDTH, HEIGHT = 400, 190
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 8, 20


@dataclass(frozen=True)
class Series:
    """One row of values; `css` names its colour; `tips[i]` is bar i's tooltip."""

    name: str
    css: str
    values: Sequence[float]
    tips: Sequence[str]


MONEY_STEPS = (1, 2, 2.5, 5, 10)
WHOLE_STEPS = (1, 2, 4, 10)  # a count's axis: its half is a whole number too


def nice_ceiling(value: float, steps: Sequence[float] = MONEY_STEPS) -> float:
    """The smallest of `steps` × 10ⁿ at or above `value` (the axis' top), at least 2
    for whole numbers."""
    if steps is WHOLE_STEPS:
        value = max(value, 2)
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(s * power for s in steps if value <= s * power * (1 + 1e-9))


def _n(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _svg(label: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, css: str, anchor: str = "start") -> str:
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" class="{css}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def _bar(x: float, y: float, width: float, height: float, css: str, tip: str) -> str:
    return (
        f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" height="{_n(height)}" '
        f'class="bar {css}"><title>{escape(tip)}</title></rect>'
    )


def bar_chart(
    *,
    label: str,
    labels: Sequence[str],
    series: Sequence[Series],
    axis_format: Callable[[float], str],
    stacked: bool = False,
    whole: bool = False,
    label_every: int = 5,
) -> str:
    """Bars per label (a day): the series stacked, or side by side. The axis has 0, half
    and its top (`nice_ceiling` of the largest bar) written by `axis_format`; the labels
    are written under every `label_every`-th bar, counted back from the last. `whole`:
    the values are counts, and so is every figure of the axis."""
    count = len(labels)
    if stacked:
        tallest = max((sum(s.values[i] for s in series) for i in range(count)), default=0)
    else:
        tallest = max((max(s.values, default=0) for s in series), default=0)
    top = nice_ceiling(tallest, WHOLE_STEPS if whole else MONEY_STEPS)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    slot = plot_w / max(count, 1)
    body = []
    for fraction in (0, 0.5, 1):
        y = base - plot_h * fraction
        body.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_n(y)}" y2="{_n(y)}" '
            f'class="{"axis" if fraction == 0 else "grid"}"/>'
        )
        body.append(_text(LEFT - 4, y + 4, axis_format(top * fraction), "tick", "end"))
    gap = max(slot * 0.2, 1)
    for i in range(count):
        x = LEFT + i * slot + gap / 2
        if stacked:
            y = base
            for s in series:
                height = plot_h * s.values[i] / top
                if s.values[i] > 0:
                    y -= height
                    body.append(_bar(x, y, slot - gap, height, s.css, s.tips[i]))
        else:
            width = (slot - gap) / max(len(series), 1)
            for k, s in enumerate(series):
                if s.values[i] > 0:
                    height = plot_h * s.values[i] / top
                    body.append(_bar(x + k * width, base - height, width, height, s.css, s.tips[i]))
        if (count - 1 - i) % label_every == 0:
            body.append(_text(LEFT + (i + 0.5) * slot, HEIGHT - 6, labels[i], "tick", "middle"))
    return _svg(label, body)


@dataclass(frozen=True)
class Step:
    """A row of a funnel: its name, its count, its colour (`css`) and its note (the
    share), written right of the bar."""

    name: str
    count: int
    css: str
    note: str


FUNNEL_ROW = 26
FUNNEL_NAMES = 118  # the names' column


def funnel_chart(*, label: str, steps: Sequence[Step], count_format: Callable[[int], str]) -> str:
    """Horizontal bars, each as long as its count against the first (the whole)."""
    whole = max((s.count for s in steps), default=0) or 1
    space = WIDTH - FUNNEL_NAMES - 110  # room right of the longest bar for its figure
    body = []
    for i, step in enumerate(steps):
        y = 4 + i * FUNNEL_ROW
        body.append(_text(FUNNEL_NAMES - 6, y + 15, step.name, "name", "end"))
        length = space * step.count / whole
        figure = f"{count_format(step.count)} {step.note}".strip()
        if step.count:
            body.append(_bar(FUNNEL_NAMES, y + 2, max(length, 1), FUNNEL_ROW - 8, step.css, figure))
        body.append(_text(FUNNEL_NAMES + length + 6, y + 15, figure, "value"))
    return _svg(label, body, height=8 + len(steps) * FUNNEL_ROW)
