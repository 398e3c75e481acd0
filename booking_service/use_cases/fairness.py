"""Taking turns between organizations on one worker's threads (#24): an organization with an
exchange in flight here gets no second one until it ends, so another organization's slow
servers hold at most one thread; and the organizations served most recently can be sent to
the back of the line. Per process: several workers each give an organization one turn."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class OrgTurns:
    """The organizations with an exchange in flight in this process, and (`remember`) the
    ones served most recently, oldest first."""

    def __init__(self, remember: int = 0):
        self._lock = threading.Lock()
        self._busy: set[int] = set()
        self._recent: deque[int] = deque(maxlen=remember)

    def busy(self) -> list[int]:
        """Organizations to leave out of the next claim."""
        with self._lock:
            return sorted(self._busy)

    def recent(self) -> list[int]:
        """Organizations to put at the back of the line."""
        with self._lock:
            return list(self._recent)

    @contextmanager
    def turn(self, org_id: int) -> Iterator[bool]:
        """The organization's turn for one exchange; False when another thread has it already
        (the caller gives its claim back by rolling back)."""
        with self._lock:
            taken = org_id not in self._busy
            if taken:
                self._busy.add(org_id)
                self._recent.append(org_id)
        try:
            yield taken
        finally:
            if taken:
                with self._lock:
                    self._busy.discard(org_id)
