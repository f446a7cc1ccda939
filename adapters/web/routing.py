"""Registering routes behind the front (:class:`~adapters.web.middleware.Front`).

The app has no aiohttp middleware, so aiohttp calls a route's handler directly (its fast
path); instead every route's handler is wrapped in the front once, here, as it is
registered. Three kinds of request would otherwise miss the front:

- static files: :func:`add_static` serves them with aiohttp's own
  :class:`~aiohttp.web.StaticResource` handler (its path checks: nothing outside the
  directory, no absolute paths), under a route of ours whose handler is wrapped;
- requests that match no route, or a route but not its method: aiohttp answers those
  itself, bare, when no middleware runs. :func:`add_unmatched` adds, last, a catch-all
  route for every path and method, which works out 404 or 405 (with its ``Allow``
  header) from the router's other resources exactly as aiohttp does, and raises it
  inside the front, so it gets our error page, the security headers and the metrics
  label ``unmatched``. The catch-all (:class:`CatchAll`) is indexed under ``/``, which
  aiohttp tries last, after every more specific resource, and among those at ``/`` it
  was added last. It is a resource of its own (aiohttp's public ``AbstractResource``)
  rather than a ``/{path:.*}`` pattern, which a request target such as ``*`` (``OPTIONS
  *``) would not match.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from yarl import URL

if TYPE_CHECKING:
    from aiohttp.web_urldispatcher import _InfoDict  # (get_info's declared type)

from adapters.web.middleware import Front

#: The metrics label of requests that match no route (or not its method), and the name
#: of the catch-all resource that answers them.
UNMATCHED = "unmatched"


def add_routes(
    router: web.UrlDispatcher, front: Front, routes: Iterable[web.AbstractRouteDef]
) -> None:
    """Register a module's ``RouteTableDef`` with each handler behind the front."""
    for route in routes:
        if not isinstance(route, web.RouteDef):
            raise TypeError(f"only plain routes are supported here, not {route!r}")
        # (RouteDef.register, as add_routes does: a GET route answers HEAD too)
        web.RouteDef(route.method, route.path, front.wrap(route.handler), route.kwargs).register(
            router
        )


def add_static(
    router: web.UrlDispatcher, front: Front, prefix: str, directory: Path, *, name: str
) -> None:
    """Serve the files under ``directory`` at ``prefix`` (GET and HEAD), behind the front."""
    files = web.StaticResource(prefix, str(directory))
    serve = next(route.handler for route in files if route.method == hdrs.METH_GET)

    async def folder(request: web.Request) -> web.StreamResponse:
        raise web.HTTPForbidden()  # (as StaticResource answers its bare prefix)

    # ``filename`` is the name StaticResource's handler reads from the match; ``.*``
    # like StaticResource's own match (an empty name is the folder: refused). The
    # metrics label stays the prefix, StaticResource's own.
    router.add_get(f"{prefix}/{{filename:.*}}", front.wrap(serve, label=prefix), name=name)
    router.add_get(prefix, front.wrap(folder, label=prefix))


def add_unmatched(router: web.UrlDispatcher, front: Front) -> None:
    """The catch-all route answering 404 and 405 (add it after every other route)."""

    async def unmatched(request: web.Request) -> web.StreamResponse:
        allowed: set[str] = set()
        for resource in router.resources():
            if resource is not catch_all:
                _, methods = await resource.resolve(request)
                allowed |= methods
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound()

    catch_all = CatchAll(front.wrap(unmatched, label=UNMATCHED, unmatched=True))
    router.register_resource(catch_all)


class CatchAll(web.AbstractResource):
    """A resource every request matches, whatever its path and method (even ``*``, which
    no path pattern matches). Indexed under ``/``, and added last, so aiohttp tries it
    after every other resource."""

    def __init__(self, handler: Handler):
        super().__init__(name=UNMATCHED)
        self._route = web.ResourceRoute(hdrs.METH_ANY, handler, self)

    @property
    def canonical(self) -> str:
        return "/"

    def url_for(self, **kwargs: str) -> URL:
        raise RuntimeError("the catch-all resource has no URL of its own")

    def add_prefix(self, prefix: str) -> None:
        raise RuntimeError("the catch-all resource cannot be moved under a prefix")

    def get_info(self) -> _InfoDict:
        return {}

    def raw_match(self, path: str) -> bool:
        return False  # (raw_match looks for a resource of a given path: none is this)

    async def resolve(self, request: web.Request) -> tuple[web.UrlMappingMatchInfo, set[str]]:
        return web.UrlMappingMatchInfo({}, self._route), set()

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[web.AbstractRoute]:
        return iter((self._route,))
