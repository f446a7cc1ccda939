"""Operations: ``/healthz`` for load balancers, ``/metrics`` for Prometheus.

Keep ``/metrics`` to the internal network (at the reverse proxy): it is unauthenticated
and shows traffic figures, though no user data.
"""

from __future__ import annotations

import logging

from aiohttp import web

from adapters.web.keys import HEALTH, METRICS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.get("/healthz", name="healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 when the store answers a read and takes a write (checked every few seconds
    at most: see :mod:`adapters.web.health`), else 503."""
    problem = await request.app[HEALTH].problem()
    if problem is not None:
        return web.json_response(
            {"status": "unavailable", "store": problem},
            status=503,
            headers={"Cache-Control": "no-store", "Retry-After": "5"},
        )
    return web.json_response({"status": "ok", "store": "ok"}, headers={"Cache-Control": "no-store"})


@routes.get("/metrics", name="metrics")
async def metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    response = web.Response(body=metrics.render(), headers={"Cache-Control": "no-store"})
    response.headers["Content-Type"] = metrics.content_type
    return response
