"""Server-side SVG for the lab's quality dashboard: alpha over time, distribution of margins.

Plain strings built from numbers and escaped labels, so the page needs no
JavaScript charting library and renders the same in every browser and in
tests. Every mark carries a ``<title>`` with its exact figure.
"""
from __future__ import annotations

from html import escape
from typing import Any

from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 16, 16, 36
NOMINAL, ORDINAL, BAR, GRID, INK, THRESHOLD = "#2f5bea", "#1a7f4b", "#6b8cf5", "#d9dee8", "#5b6475", "#b4541a"


def _svg(label: str, body: list[str]) -> SafeString:
    return mark_safe(  # noqa: S308 - numbers and escaped text only
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(label)}" font-family="system-ui, sans-serif" font-size="11">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _plot_box() -> tuple[float, float, float, float]:
    return PAD_LEFT, WIDTH - PAD_RIGHT, PAD_TOP, HEIGHT - PAD_BOTTOM


def alpha_over_time(history: list[dict[str, Any]]) -> SafeString:
    """Nominal alpha with its 95% band, and ordinal alpha, per report (oldest left)."""
    points = [h for h in history if (h.get("nominal") or {}).get("value") is not None]
    if not points:
        return _svg("Alpha over time: no report yet", [])
    left, right, top, bottom = _plot_box()
    values = [v for h in points for key in ("nominal", "ordinal")
              for v in ((h.get(key) or {}).get("low"), (h.get(key) or {}).get("value")) if v is not None]
    y_min = min(0.0, min(values))
    y_min = float(int(y_min * 5 - 1) / 5) if y_min < 0 else 0.0  # round down to a 0.2 step

    def x(i: int) -> float:
        return (left + right) / 2 if len(points) == 1 else left + (right - left) * i / (len(points) - 1)

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - y_min) / (1.0 - y_min)

    body = []
    tick = y_min
    while tick <= 1.0001:
        body.append(f'<line x1="{left}" x2="{right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{GRID}"/>'
                    f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="{INK}">{tick:.1f}</text>')
        tick = round(tick + 0.2, 6)
    band = [(x(i), (h["nominal"].get("high"), h["nominal"].get("low"))) for i, h in enumerate(points)]
    if all(hi is not None and lo is not None for _, (hi, lo) in band):
        upper = " ".join(f"{px:.1f},{y(hi):.1f}" for px, (hi, _) in band)
        lower = " ".join(f"{px:.1f},{y(lo):.1f}" for px, (_, lo) in reversed(band))
        if len(points) == 1:
            px, (hi, lo) = band[0]
            body.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y(hi):.1f}" y2="{y(lo):.1f}" '
                        f'stroke="{NOMINAL}" stroke-width="6" stroke-opacity="0.25"/>')
        else:
            body.append(f'<polygon points="{upper} {lower}" fill="{NOMINAL}" fill-opacity="0.15"/>')
    for key, colour, dash in (("ordinal", ORDINAL, ' stroke-dasharray="5 3"'), ("nominal", NOMINAL, "")):
        series = [(i, h[key]) for i, h in enumerate(points) if (h.get(key) or {}).get("value") is not None]
        if len(series) > 1:
            path = " ".join(f"{x(i):.1f},{y(s['value']):.1f}" for i, s in series)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for i, s in series:
            low, high = s.get("low"), s.get("high")
            interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
            when = points[i]["computed_at"]
            when_text = when.strftime("%Y-%m-%d %H:%M") if hasattr(when, "strftime") else str(when)
            body.append(f'<circle cx="{x(i):.1f}" cy="{y(s["value"]):.1f}" r="3" fill="{colour}">'
                        f"<title>{escape(key)} alpha {s['value']:.3f}{interval} at {escape(when_text)}</title></circle>")
    last = points[-1]["nominal"]
    body.append(f'<text x="{left}" y="{HEIGHT - 8}" fill="{INK}">{len(points)} report(s); latest nominal alpha '
                f'{last["value"]:.3f}</text>')
    body.append(f'<text x="{right}" y="{HEIGHT - 8}" text-anchor="end"><tspan fill="{NOMINAL}">&#9644; nominal '
                f'(95% band)</tspan> <tspan fill="{ORDINAL}">&#9476; ordinal</tspan></text>')
    return _svg("Krippendorff's alpha over time", body)


def margin_histogram(bins: list[dict[str, Any]], min_margin: float) -> SafeString:
    """Tasks per consensus-margin bin, with the campaign's minimum margin marked."""
    total = sum(b["count"] for b in bins)
    if not total:
        return _svg("Distribution of consensus margins: no consensus yet", [])
    left, right, top, bottom = _plot_box()
    peak = max(b["count"] for b in bins)
    width = (right - left) / len(bins)
    body = [f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{INK}"/>']
    for k, b in enumerate(bins):
        h = (bottom - top - 14) * b["count"] / peak
        bx = left + k * width
        share = b["count"] / total
        body.append(
            f'<rect x="{bx + 2:.1f}" y="{bottom - h:.1f}" width="{width - 4:.1f}" height="{h:.1f}" fill="{BAR}">'
            f'<title>margin {b["low"]:.1f}-{b["high"]:.1f}: {b["count"]} tasks ({share:.1%})</title></rect>'
            f'<text x="{bx + width / 2:.1f}" y="{bottom - h - 3:.1f}" text-anchor="middle" fill="{INK}">'
            f'{b["count"]}</text>'
            f'<text x="{bx:.1f}" y="{bottom + 14}" text-anchor="middle" fill="{INK}">{b["low"]:.1f}</text>'
        )
    body.append(f'<text x="{right:.1f}" y="{bottom + 14}" text-anchor="middle" fill="{INK}">1.0</text>')
    mx = left + (right - left) * min(max(min_margin, 0.0), 1.0)
    body.append(f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{top}" y2="{bottom}" stroke="{THRESHOLD}" '
                f'stroke-dasharray="4 3"><title>minimum margin {min_margin:.2f}</title></line>'
                f'<text x="{mx + 4:.1f}" y="{top + 10}" fill="{THRESHOLD}">min margin {min_margin:.2f}</text>')
    body.append(f'<text x="{(left + right) / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle" fill="{INK}">'
                f'consensus margin |2p - 1| ({total} tasks)</text>')
    return _svg("Distribution of consensus margins", body)
