"""What every detector is: its own state as plain data, and what it explains about a score."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, Self, TypedDict


class Explanation(TypedDict):
    """One input that drove a detector's score, in the shape of a warning reason."""

    feature: str
    value: float | None
    op: str
    threshold: float | None
    text: str


class Detector(Protocol):
    """An online detector that converts to and from plain JSON data.

    ``from_dict(d.to_dict(), **params)`` gives back a detector that scores and
    learns like ``d``; ``params`` are the constructor's parameters, which the
    data does not carry (they come from code or settings). ``None`` or an empty
    mapping gives a new detector. The data shapes are part of the stored
    customer state: a change must keep reading what older versions wrote.
    """

    def to_dict(self) -> dict[str, Any]:
        """The learned state as JSON-ready data."""
        ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, **params: Any) -> Self:
        """A detector with ``params`` and the state ``data`` (new when ``None``)."""
        ...
