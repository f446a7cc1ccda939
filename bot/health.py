"""What each adapter is doing, for ``/healthz`` and the logs.

An adapter whose platform could not be reached at start is *degraded*: the process
serves on (the web page, the other platforms) while it is tried again in the
background. ``/healthz`` names degraded adapters in its body and still answers 200, so a
load balancer keeps routing to a process whose own page works; only an unreachable
store (which breaks every page) makes it answer 503.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

State = Literal["starting", "ok", "degraded"]


@dataclass(frozen=True, slots=True)
class AdapterState:
    state: State
    detail: str = ""


class AdapterHealth:
    """The state of every adapter of this process, by name."""

    def __init__(self) -> None:
        self._states: dict[str, AdapterState] = {}

    def mark(self, name: str, state: State, detail: str = "") -> None:
        self._states[name] = AdapterState(state, detail)

    def snapshot(self) -> MappingProxyType[str, AdapterState]:
        return MappingProxyType(dict(self._states))

    @property
    def degraded(self) -> list[str]:
        """The names of the adapters that are not serving, in start order."""
        return [name for name, s in self._states.items() if s.state == "degraded"]
