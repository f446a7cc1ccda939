"""Operations: ``/healthz`` for load balancers, ``/metrics`` for Prometheus.

Keep ``/metrics`` to the internal network (at the reverse proxy): it is unauthenticated
and shows traffic figures, though no user data.
"""

from __future__ import annotations

import logging

from aiohttp import web

from adapters.web.keys import ADAPTER_HEALTH, HEALTH, METRICS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


def adapter_states(request: web.Request) -> dict[str, dict[str, str]]:
    """Each adapter's state (``ok``, ``starting``, ``degraded`` with why)."""
    states = request.app[ADAPTER_HEALTH].snapshot()
    return {
        name: {"state": s.state, **({"detail": s.detail} if s.detail else {})}
        for name, s in states.items()
    }


@routes.get("/healthz", name="healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 when the store answers a read and takes a write (checked every few seconds
    at most: see :mod:`adapters.web.health`), else 503. The body names each adapter's
    state; a degraded platform adapter (its platform unreachable, tried again in the
    background) makes ``status`` read ``degraded`` but keeps the 200: the rest of the
    process serves, and a load balancer must not take it out for that."""
    problem = await request.app[HEALTH].problem()
    if problem is not None:
        return web.json_response(
            {"status": "unavailable", "store": problem},
            status=503,
            headers={"Cache-Control": "no-store", "Retry-After": "5"},
        )
    degraded = request.app[ADAPTER_HEALTH].degraded
    body = {
        "status": "degraded" if degraded else "ok",
        "store": "ok",
        "adapters": adapter_states(request),
        **({"degraded": degraded} if degraded else {}),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


@routes.get("/metrics", name="metrics")
async def metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    response = web.Response(body=metrics.render(), headers={"Cache-Control": "no-store"})
    response.headers["Content-Type"] = metrics.content_type
    return response
