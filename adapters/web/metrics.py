"""Prometheus metrics: the engine's :class:`~bot.metrics.Metrics` and the web's own.

Each instance has its own ``CollectorRegistry`` (not prometheus-client's global one),
so one process can build many apps (tests do) and ``/metrics`` shows exactly what this
instance counts. Label values come from small fixed sets (platforms, reply kinds, route
patterns), never from user input, so the number of series stays bounded.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

NAMESPACE = "personabridge"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Reply latencies run from milliseconds (offline) to a minute (remote LLMs).
BACKEND_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class PrometheusMetrics:
    """Implements :class:`bot.metrics.Metrics`, plus HTTP and login counters."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r, ns = self.registry, NAMESPACE
        self._in = Counter(
            "messages_in", "Messages received, by platform", ["platform"], namespace=ns, registry=r
        )
        self._out = Counter(
            "messages_out",
            "Replies sent, by platform and kind (chat, command, error, rate_limited, denied)",
            ["platform", "kind"],
            namespace=ns,
            registry=r,
        )
        self._latency = Histogram(
            "backend_latency_seconds",
            "Time for a backend to produce a whole reply",
            ["backend"],
            namespace=ns,
            registry=r,
            buckets=BACKEND_BUCKETS,
        )
        self._errors = Counter(
            "errors", "Errors, by kind (backend, store, ...)", ["kind"], namespace=ns, registry=r
        )
        self._limited = Counter(
            "rate_limited",
            "Messages refused by the rate limit, by platform",
            ["platform"],
            namespace=ns,
            registry=r,
        )
        self._http = Histogram(
            "http_request_duration_seconds",
            "Web requests by method, route pattern and status",
            ["method", "route", "status"],
            namespace=ns,
            registry=r,
            buckets=HTTP_BUCKETS,
        )
        self._http_children: dict[tuple[str, str, int], Histogram] = {}
        self._logins = Counter(
            "logins", "Login attempts, by result", ["result"], namespace=ns, registry=r
        )

    # -- bot.metrics.Metrics ---------------------------------------------------------------

    def message_in(self, platform: str) -> None:
        self._in.labels(platform).inc()

    def message_out(self, platform: str, kind: str) -> None:
        self._out.labels(platform, str(kind)).inc()

    def backend_latency(self, backend: str, seconds: float) -> None:
        self._latency.labels(backend).observe(seconds)

    def error(self, kind: str) -> None:
        self._errors.labels(kind).inc()

    def rate_limited(self, platform: str) -> None:
        self._limited.labels(platform).inc()

    # -- the web's own -----------------------------------------------------------------

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._http_children.get(key)
        if child is None:  # labels() takes a lock and builds a key: once per series
            name = method if method in _METHODS else "OTHER"
            child = self._http_children[key] = self._http.labels(name, route, str(status))
        child.observe(seconds)

    def login(self, result: str) -> None:
        """``result``: ok, failed or throttled."""
        self._logins.labels(result).inc()

    def render(self) -> bytes:
        """The text exposition format, for ``/metrics``."""
        return generate_latest(self.registry)
