"""The dashboard's charts laid out in Python, so that tests can measure them: where each bar,
label, benchmark line and health band goes in the SVG that admin/templates/admin/charts.html
draws. Text widths are estimated generously (FONT_ADVANCE em per character), axis labels are
thinned to every n-th bar so that no two overlap at any period, values are written above the
bars only when every one fits, and the benchmark and band labels sit in the right margin,
outside the plot, never on a bar. Colours meet WCAG AA against white (contrast() below)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

FONT_ADVANCE = 0.62  # em per character: above the average of the panel's sans-serif fonts
WIDTH = 480  # drawn about this wide in a half-width card: 10 px type stays 10 px
PLOT = (40.0, 18.0, 396.0, 200.0)  # left, top, right, bottom of the bar area
HEIGHT = 232
GAP = 6.0  # the least space between two labels
AXIS_SIZE, VALUE_SIZE, SIDE_SIZE, ROW_SIZE = 10, 11, 11, 12

INK, MUTED, BAR, REFERENCE, BAND_FILL, BAND_INK = (
    "#1f2933", "#52606d", "#3e7cb1", "#b42318", "#dcf5df", "#1e6b2c")


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: Box) -> bool:
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)


@dataclass(frozen=True)
class Label:
    x: float
    y: float  # the baseline
    text: str
    size: int
    anchor: str = "middle"  # start, middle, end (SVG text-anchor)

    @property
    def box(self) -> Box:
        width = text_width(self.text, self.size)
        left = {"start": self.x, "middle": self.x - width / 2, "end": self.x - width}
        return Box(left[self.anchor], self.y - self.size, width, self.size * 1.2)


@dataclass(frozen=True)
class Bar:
    box: Box
    label: str  # the full label, for the bar's <title>
    value: str


@dataclass
class BarChart:
    bars: list[Bar]
    axis: list[Label]
    values: list[Label]
    side: list[Label] = field(default_factory=list)  # benchmark and band labels, in the margin
    reference_y: float | None = None
    band: Box | None = None
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def plot(self) -> Box:
        left, top, right, bottom = PLOT
        return Box(left, top, right - left, bottom - top)

    def labels(self) -> list[Label]:
        return self.axis + self.values + self.side


def text_width(text: str, size: int) -> float:
    return len(text) * size * FONT_ADVANCE


def bars(rows: list[tuple[str, str, float, str]], *, reference: float | None = None,
         reference_text: str = "", band: tuple[float, float] | None = None,
         band_text: str = "") -> BarChart:
    """Vertical bars, one per row (axis label, full label, value, value as text), scaled to
    the largest of the values, the reference and the band's top."""
    left, top, right, bottom = PLOT
    count = max(len(rows), 1)
    step = (right - left) / count
    highest = max([v for _, _, v, _ in rows] + [reference or 0, band[1] if band else 0]) or 1
    scale = (bottom - top) / highest
    chart = BarChart([], [], [])
    for index, (_, full, value, text) in enumerate(rows):
        height = max(value, 0) * scale
        chart.bars.append(Bar(Box(left + index * step + step * 0.1, bottom - height,
                                  max(step * 0.8, 0.5), height), full, text))
    chart.axis = axis_labels([(a, bar.box) for (a, _, _, _), bar in zip(rows, chart.bars,
                                                                         strict=True)], step)
    chart.values = value_labels(chart.bars, step)
    if reference is not None and rows:
        chart.reference_y = bottom - reference * scale
        chart.side += side_labels(chart.reference_y, ["benchmark", reference_text])
    if band is not None:
        low_y, high_y = bottom - band[0] * scale, bottom - band[1] * scale
        chart.band = Box(left, high_y, right - left, low_y - high_y)
        chart.side += side_labels((low_y + high_y) / 2, ["healthy", band_text])
    return chart


def axis_labels(rows: list[tuple[str, Box]], step: float) -> list[Label]:
    """Every n-th bar's label under it, n the least that keeps the widest label apart."""
    if not rows:
        return []
    widest = max(text_width(text, AXIS_SIZE) for text, _ in rows)
    every = max(1, math.ceil((widest + GAP) / step))
    bottom = PLOT[3]
    return [Label(box.x + box.w / 2, bottom + 14, text, AXIS_SIZE)
            for index, (text, box) in enumerate(rows) if index % every == 0]


def value_labels(chart_bars: list[Bar], step: float) -> list[Label]:
    """Each bar's value above it, when every value fits its bar's width; else none (the
    table under the chart has them)."""
    if not chart_bars or max(text_width(b.value, VALUE_SIZE) for b in chart_bars) + GAP > step:
        return []
    return [Label(b.box.x + b.box.w / 2, b.box.y - 4, b.value, VALUE_SIZE) for b in chart_bars]


def side_labels(middle: float, lines: list[str]) -> list[Label]:
    """Lines of text in the right margin, centred on `middle`, kept inside the chart."""
    lines = [line for line in lines if line]
    first = middle - (len(lines) - 1) * SIDE_SIZE * 1.3 / 2 + SIDE_SIZE / 2
    first = min(max(first, SIDE_SIZE), PLOT[3] - (len(lines) - 1) * SIDE_SIZE * 1.3)
    return [Label(PLOT[2] + GAP, first + i * SIDE_SIZE * 1.3, line, SIDE_SIZE, "start")
            for i, line in enumerate(lines)]


@dataclass
class RowChart:
    rows: list[tuple[Label, Box, Label, str]]  # name, bar, value text, full name
    width: int = WIDTH
    row_height: int = 24

    @property
    def height(self) -> int:
        return len(self.rows) * self.row_height + 10


NAME_WIDTH = 150.0
VALUE_GAP = 6.0


def hbars(rows: list[tuple[str, float, str]]) -> RowChart:
    """Horizontal bars, one per row (name, value, value as text): names shortened to fit
    their column, the value written after each bar."""
    widest_value = max([text_width(t, ROW_SIZE) for _, _, t in rows] + [0])
    room = WIDTH - NAME_WIDTH - 10 - VALUE_GAP - widest_value - 4
    highest = max([v for _, v, _ in rows] + [0]) or 1
    chart = RowChart([])
    for index, (name, value, text) in enumerate(rows):
        y = index * chart.row_height
        length = max(value / highest * room, 1)
        bar = Box(NAME_WIDTH + 10, y + 4, length, chart.row_height - 8)
        chart.rows.append((Label(0, y + 16, fit(name, NAME_WIDTH, ROW_SIZE), ROW_SIZE, "start"),
                           bar, Label(bar.x + length + VALUE_GAP, y + 16, text, ROW_SIZE,
                                      "start"), name))
    return chart


def fit(text: str, width: float, size: int) -> str:
    """text shortened with an ellipsis to fit `width`."""
    most = int(width // (size * FONT_ADVANCE))
    return text if len(text) <= most else text[:most - 1] + "…"


def luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, two: str) -> float:
    """The WCAG contrast ratio of two #rrggbb colours."""
    high, low = sorted((luminance(one), luminance(two)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# The dashboard's charts --------------------------------------------------------------------

def axis_text(key: date, period: str, years: int) -> str:
    """A short axis label: the bar's title keeps the full one."""
    if period in ("day", "week"):
        return key.strftime("%d %b %y" if years > 1 else "%d %b").lstrip("0")
    if period == "month":
        return key.strftime("%b %Y")
    if period == "quarter":
        return f"Q{(key.month - 1) // 3 + 1} {key.year}"
    return str(key.year)


def _years(keys: list[date]) -> int:
    return len({key.year for key in keys})


def volume_chart(volume: dict, period: str, labels) -> BarChart:
    """MQLs per period, the benchmark a dashed line labelled in the margin."""
    years = _years([k for k, _ in volume["rows"]])
    rows = [(axis_text(k, period, years), labels(k), float(n), str(n))
            for k, n in volume["rows"]]
    benchmark = volume["benchmark"] or None
    return bars(rows, reference=benchmark, reference_text=f"{benchmark or 0:.1f}")


def conversion_chart(conv: dict, period: str, labels) -> BarChart:
    """MQL→SQL conversion per cohort, over the healthy band."""
    years = _years([k for k, _, _ in conv["rows"]])
    rows = [(axis_text(k, period, years), labels(k), r or 0.0,
             "—" if r is None else f"{r:.0%}") for k, _, r in conv["rows"]]
    return bars(rows, band=(conv["low"], conv["high"]),
                band_text=f"{conv['low']:.0%}–{conv['high']:.0%}")


def sla_chart(rates: list[tuple]) -> RowChart:
    """Each rep's share of settled handoffs decided within the SLA, with the counts."""
    return hbars([(email, rate or 0.0, "—" if rate is None else
                   f"{rate:.0%} ({within} of {settled})")
                  for email, within, settled, rate in rates])


def count_chart(rows) -> RowChart:
    return hbars([(str(name), float(n), str(n)) for name, n in rows])
