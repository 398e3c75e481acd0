"""Every test in tests/stack and tests/browser carries its folder's marker and no other test
carries one, so that `make test-fast` (`-m "not stack and not browser"`) leaves out exactly the
tests that start the service's processes or a browser."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.support.markers import COLLECTED, FOLDER_MARKERS

ROOT = Path(__file__).resolve().parents[2]


def test_the_folder_markers_are_registered():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    registered = {line.split(":")[0].strip() for line in options["ini_options"]["markers"]}
    assert set(FOLDER_MARKERS.values()) <= registered


def test_every_collected_test_carries_exactly_its_folders_marker(request: pytest.FixtureRequest):
    collected = request.config.stash[COLLECTED]  # the whole collection, before `-m`
    assert any(node_id == request.node.nodeid for node_id, _, _ in collected)
    wrong = [
        (node_id, sorted(marks & set(FOLDER_MARKERS.values())))
        for node_id, folder, marks in collected
        if marks & set(FOLDER_MARKERS.values())
        != ({FOLDER_MARKERS[folder]} if folder in FOLDER_MARKERS else set())
    ]
    assert not wrong, wrong
