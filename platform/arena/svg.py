"""Small inline SVG plots (no JavaScript, no plotting library): the PR curve of a detection submission, the CMC
curve of a recognition one, a team's rank history. Public-split aggregates only: never per-image detail."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

W, H, PAD = 360, 240, 36


def _frame(
    title: str,
    x_label: str,
    y_label: str,
    body: str,
    x_ticks: list[tuple[float, str]],
    y_ticks: list[tuple[float, str]],
) -> Markup:
    ticks = []
    for x, label in x_ticks:
        ticks.append(f'<text x="{x:.1f}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">{escape(label)}</text>')
    for y, label in y_ticks:
        ticks.append(f'<text x="{PAD - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{escape(label)}</text>')
        ticks.append(f'<line x1="{PAD}" x2="{W - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<rect x="{PAD}" y="8" width="{W - PAD - 8}" height="{H - PAD - 8}" fill="none" stroke="#888"/>'
        + "".join(ticks)
        + body
        + f'<text x="{(W + PAD) / 2}" y="{H - 4}" font-size="11" text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="10" y="{H / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 10 {H / 2})">'
        f"{escape(y_label)}</text></svg>"
    )


def _x(v: float) -> float:
    return PAD + v * (W - PAD - 8)


def _y(v: float) -> float:
    return 8 + (1 - v) * (H - PAD - 8)


def _unit_ticks():
    return [(_x(v), f"{v:.1f}") for v in (0, 0.5, 1)], [(_y(v), f"{v:.1f}") for v in (0, 0.5, 1)]


def pr_curve(recall: list[float], precision: list[float]) -> Markup:
    points = " ".join(f"{_x(r):.1f},{_y(p):.1f}" for r, p in zip(recall, precision, strict=True))
    x_ticks, y_ticks = _unit_ticks()
    body = f'<polyline points="{points}" fill="none" stroke="#1f5fbf" stroke-width="2"/>'
    return _frame("precision / recall (public split)", "recall", "precision", body, x_ticks, y_ticks)


def cmc_curve(cmc: dict[str, float]) -> Markup:
    ranks = sorted(cmc, key=lambda k: int(k))
    top = max(int(k) for k in ranks)
    xs = [(int(k) - 1) / max(top - 1, 1) for k in ranks]
    points = " ".join(f"{_x(x):.1f},{_y(cmc[k]):.1f}" for x, k in zip(xs, ranks, strict=True))
    dots = "".join(
        f'<circle cx="{_x(x):.1f}" cy="{_y(cmc[k]):.1f}" r="3" fill="#1f5fbf"/>' for x, k in zip(xs, ranks, strict=True)
    )
    x_ticks = [(_x(x), k) for x, k in zip(xs, ranks, strict=True)]
    _, y_ticks = _unit_ticks()
    body = f'<polyline points="{points}" fill="none" stroke="#1f5fbf" stroke-width="2"/>' + dots
    return _frame("CMC (public split)", "rank k", "identification rate", body, x_ticks, y_ticks)


def rank_history(ranks: list[int]) -> Markup:
    if not ranks:
        return Markup("")
    worst = max(ranks)
    # one point (a single rank so far) sits in the middle, labelled, rather than on the frame's corner
    xs = [i / (len(ranks) - 1) for i in range(len(ranks))] if len(ranks) > 1 else [0.5]
    ys = [1 - (r - 1) / max(worst - 1, 1) for r in ranks] if len(ranks) > 1 else [0.5]
    points = " ".join(f"{_x(x):.1f},{_y(y):.1f}" for x, y in zip(xs, ys, strict=True))
    dots = "".join(
        f'<circle cx="{_x(x):.1f}" cy="{_y(y):.1f}" r="3" fill="#bf5f1f"><title>rank {r}</title></circle>'
        for x, y, r in zip(xs, ys, ranks, strict=True)
    )
    body = f'<polyline points="{points}" fill="none" stroke="#bf5f1f" stroke-width="2"/>' + dots
    if len(ranks) == 1:
        y = _y(ys[0])
        body = dots.replace('r="3"', 'r="5"') + (
            f'<text x="{_x(0.5):.1f}" y="{y + 20:.1f}" font-size="11" text-anchor="middle">'
            f"rank {ranks[0]} (one point so far)</text>"
        )
    if len(ranks) == 1:
        return _frame("public rank over time", "rank change", "rank", body, [], [(_y(0.5), str(ranks[0]))])
    y_ticks = [(_y(1), "1")] + ([(_y(0), str(worst))] if worst > 1 else [])
    return _frame("public rank over time", "rank change", "rank", body, [], y_ticks)
