"""How a score is shown to people, in one place (FORMATS.md): the pages' `score` filter and the notifications use
it, so a rank-1 reads 94.26 % everywhere and a mAP 0.9291."""

from __future__ import annotations


def shown_score(value: float | None, metric: str) -> str:
    """rank-1 (and every rank-k) as a percentage with two decimals, the other metrics as a fraction with four."""
    if value is None:
        return ""
    return f"{100 * value:.2f} %" if metric.startswith("rank") else f"{value:.4f}"
