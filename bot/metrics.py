"""What the engine counts, behind a small protocol; the web adapter backs it with
Prometheus, tests and the console use :class:`NullMetrics`."""

from __future__ import annotations

from typing import Protocol


class Metrics(Protocol):
    def message_in(self, platform: str) -> None: ...

    def message_out(self, platform: str, kind: str) -> None: ...

    def backend_latency(self, backend: str, seconds: float) -> None: ...

    def error(self, kind: str) -> None: ...

    def rate_limited(self, platform: str) -> None: ...


class NullMetrics:
    """Counts nothing."""

    def message_in(self, platform: str) -> None:
        pass

    def message_out(self, platform: str, kind: str) -> None:
        pass

    def backend_latency(self, backend: str, seconds: float) -> None:
        pass

    def error(self, kind: str) -> None:
        pass

    def rate_limited(self, platform: str) -> None:
        pass
