"""Prometheus metrics: the engine's :class:`~bot.metrics.Metrics` and the web's own.

Each instance has its own ``CollectorRegistry`` (not prometheus-client's global one),
so one process can build many apps (tests do) and ``/metrics`` shows exactly what this
instance counts. Label values come from small fixed sets (platforms, reply kinds, route
patterns), never from user input, so the number of series stays bounded.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import accumulate

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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
        self._http = _HttpHistogram(f"{ns}_http_request_duration_seconds")
        r.register(self._http)
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
        self._http.observe(method, route, status, seconds)

    @property
    def http_observer(self) -> Callable[[str, str, int, float], None]:
        """:meth:`http_request` itself, one call shorter: the front calls it for every
        request."""
        return self._http.observe

    def login(self, result: str) -> None:
        """``result``: ok, failed or throttled."""
        self._logins.labels(result).inc()

    def render(self) -> bytes:
        """The text exposition format, for ``/metrics``."""
        return generate_latest(self.registry)


class _HttpSeries:
    """One label set's histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("counts", "created", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(HTTP_BUCKETS) + 1)  # the last: above every bound
        self.total = 0.0
        self.created = time.time()


class _HttpHistogram(Collector):
    """Web request durations by method, route pattern and status, exposed as
    prometheus-client's ``Histogram`` exposes them (``_bucket``, ``_count``, ``_sum``,
    ``_created``).

    Counted in plain numbers: an observation is a bisect and two additions, where
    ``Histogram`` takes a lock for the sum and for the bucket (several µs on every
    request, a tenth of the login page). Only the event loop's thread counts and
    reads it (requests, and ``/metrics``), so no lock is needed."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._series: dict[tuple[str, str, int], _HttpSeries] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            # bounded label values: methods outside the standard few are one value
            method = method if method in _METHODS else "OTHER"
            key = (method, route, status)
            series = self._series.setdefault(key, _HttpSeries())
        series.counts[bisect_left(HTTP_BUCKETS, seconds)] += 1
        series.total += seconds

    def collect(self) -> Iterator[Metric]:
        family_labels = ("method", "route", "status")
        family = HistogramMetricFamily(
            self._name,
            "Web requests by method, route pattern and status",
            labels=family_labels,
        )
        bounds = [*map(floatToGoString, HTTP_BUCKETS), "+Inf"]
        for (method, route, status), series in list(self._series.items()):
            buckets = list(zip(bounds, accumulate(series.counts), strict=True))
            labels = [method, route, str(status)]
            family.add_metric(labels, buckets, series.total)
            family.add_sample(
                f"{self._name}_created",
                dict(zip(family_labels, labels, strict=True)),
                series.created,
            )
        yield family
