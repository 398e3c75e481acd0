"""What a test starts, by the folder it is in (the layout is in tests/conftest.py's docstring).
The tests in the folders named here get the folder's marker from tests/conftest.py,
so that `make test-fast` (`-m "not stack and not browser"`) leaves them out; a new file there is
marked without a `pytestmark`."""

from __future__ import annotations

import pytest

# tests/<folder>/... → the marker every test in it carries (and no test elsewhere).
FOLDER_MARKERS = {
    "stack": "stack",  # starts processes of the service: nginx, gunicorn, PgBouncer, workers
    "browser": "browser",  # drives headless Chromium
}

# (node id, folder under tests/, marker names) of every test the run collected, before `-m`
# deselected any: what tests/unit/test_markers.py checks.
COLLECTED = pytest.StashKey[list[tuple[str, str, frozenset[str]]]]()
