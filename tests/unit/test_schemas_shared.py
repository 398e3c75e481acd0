"""The tools' argument schemas are built once and shared by a worker's threads (#17)."""

from __future__ import annotations

import sys
import threading

from marshmallow import ValidationError

from booking_service.voice.tools import LOADERS, TOOLS


def _outcome(schema, arguments: dict):
    try:
        return ("loaded", schema.load(arguments))
    except ValidationError as exc:
        return ("refused", exc.messages)


def _arguments(k: int) -> dict:
    """Valid and invalid arguments, different per k, so crossed results would show."""
    if k % 3 == 0:
        return {"name": f"Caller {k}", "start": f"2030-01-{1 + k % 28:02d}T10:00", "notes": "x" * k}
    if k % 3 == 1:
        return {"name": "", "start": "soon", "durationMinutes": 1000 + k}
    return {"name": f"Caller {k}", "start": "2030-01-01T10:00", "durationMinutes": str(5 + k % 400)}


def test_shared_schemas_give_every_thread_its_own_result():
    loader = LOADERS["bookAppointment"]
    fresh = TOOLS["bookAppointment"].schema
    expected = {k: _outcome(fresh(), _arguments(k)) for k in range(200)}
    assert {kind for kind, _ in expected.values()} == {"loaded", "refused"}
    wrong: list[int] = []
    start = threading.Barrier(8)

    def work(offset: int) -> None:
        start.wait()
        for _ in range(20):
            for k in range(offset, 200, 8):
                if _outcome(loader, _arguments(k)) != expected[k]:
                    wrong.append(k)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    # Switch threads as often as the interpreter can, so that loads interleave mid-way.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(previous)
    assert wrong == []


def test_every_tool_has_its_shared_schema():
    assert set(LOADERS) == set(TOOLS)
    assert all(isinstance(LOADERS[name], tool.schema) for name, tool in TOOLS.items())
