"""Fair shares of a worker between organizations: at most N requests of one at once.

A flood from one credential (a leaked secret, an assistant stuck in a loop) would otherwise take
every thread of every worker, and other businesses' callers would wait past their budget. A
request over its organization's share is answered at once ("please ask again in a moment") and
frees its thread; nginx's limit_req (deploy/nginx.conf) caps the rate before it gets here.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Hashable, Iterator


class Admission:
    """Counts the requests running per key in this process; admits at most `limit` per key."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._running: dict[Hashable, int] = {}

    @contextlib.contextmanager
    def enter(self, key: Hashable) -> Iterator[bool]:
        """Yields whether the request is admitted; an admitted one counts until the block ends.
        A limit of 0 admits everything."""
        with self._lock:
            running = self._running.get(key, 0)
            admitted = self.limit == 0 or running < self.limit
            if admitted:
                self._running[key] = running + 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    left = self._running[key] - 1
                    if left:
                        self._running[key] = left
                    else:
                        del self._running[key]
