"""What every detector explains about a score."""

from __future__ import annotations

from typing import TypedDict


class Explanation(TypedDict):
    """One input that drove a detector's score, in the shape of a warning reason."""

    feature: str
    value: float | None
    op: str
    threshold: float | None
    text: str
