"""The web front end (aiohttp): sign up, log in, account linking, chat in the browser,
health and metrics, and the server that hosts other adapters' webhook routes."""

from adapters.web.adapter import WebAdapter
from adapters.web.app import MAX_BODY, create_app
from adapters.web.csrf import CSRF_EXEMPT_ATTR, csrf_exempt
from adapters.web.metrics import PrometheusMetrics

__all__ = [
    "CSRF_EXEMPT_ATTR",
    "MAX_BODY",
    "PrometheusMetrics",
    "WebAdapter",
    "create_app",
    "csrf_exempt",
]
