"""A caller's load-profile plan, carried out on the agent's own clock.

The workflow sends the whole plan once (a `plan` control message); the agent sets SIPp's rate at
each point, timed from SIPp's start. Per-step commands through the workflow and the broker
arrived a second or two late on a loaded machine, and a staircase step is one second long."""

from __future__ import annotations

from sipflow.messages import RatePoint


class RatePlan:
    def __init__(self) -> None:
        self._points: list[RatePoint] = []
        self._next = 0

    def load(self, points: list[RatePoint]) -> None:
        self._points = sorted(points, key=lambda p: p.at_s)
        self._next = 0

    def due(self, elapsed_s: float) -> float | None:
        """The rate to set now (the last point that came due), None when nothing changed."""
        rate = None
        while self._next < len(self._points) and self._points[self._next].at_s <= elapsed_s:
            rate = self._points[self._next].rate
            self._next += 1
        return rate

    def wait_s(self, elapsed_s: float, longest: float) -> float:
        """How long the agent may sleep without missing the next point."""
        if self._next >= len(self._points):
            return longest
        return max(0.0, min(longest, self._points[self._next].at_s - elapsed_s))
