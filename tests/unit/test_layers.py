"""The layers of docs/ARCHITECTURE.md, checked: what each package may import at run time."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "booking_service"

# layer -> imports it must not make (prefix match). Type-only imports (under TYPE_CHECKING) are
# not dependencies at run time and are not checked. Floors, lowest first: domain (pure rules),
# persistence and adapters, use cases, then the front ends (voice, api, web, cli, worker).
_REPOSITORIES = "booking_service.persistence.repositories"
# Each voice platform's edge is a package under voice/ (voice/vapi/, ...).
_VOICE_PLATFORMS = sorted(
    path.name for path in (PACKAGE / "voice").iterdir() if (path / "__init__.py").is_file()
)
_FRONT_ENDS = (
    "booking_service.voice",
    "booking_service.api",
    "booking_service.web",
    "booking_service.cli",
    "booking_service.worker",
)
FORBIDDEN = {
    "domain": (
        "booking_service.persistence",
        "booking_service.adapters",
        "booking_service.use_cases",
        "booking_service.runtime",
        *_FRONT_ENDS,
        "flask",
        "sqlalchemy",
    ),
    "persistence": (
        "booking_service.use_cases",
        "booking_service.adapters",
        "booking_service.runtime",
        *_FRONT_ENDS,
        "flask",
    ),
    "runtime": (*_FRONT_ENDS,),
    "persistence/repositories": (
        "booking_service.use_cases",
        "booking_service.adapters",
        *_FRONT_ENDS,
        "flask",
        "marshmallow",
    ),
    "adapters": (
        "booking_service.persistence",
        "booking_service.use_cases",
        *_FRONT_ENDS,
        "flask",
        "sqlalchemy",
    ),
    "use_cases": (*_FRONT_ENDS, "flask", "marshmallow"),
    # The voice core is platform-neutral: it knows no platform's edge (voice/<platform>/).
    "voice": (
        _REPOSITORIES,
        "sqlalchemy",
        "booking_service.persistence.models",
        *(f"booking_service.voice.{name}" for name in _VOICE_PLATFORMS),
    ),
    # A platform's edge parses, authenticates and answers through use cases and the core;
    # it reaches no repository, and no other platform.
    **{
        f"voice/{name}": (
            _REPOSITORIES,
            "sqlalchemy",
            "booking_service.persistence.models",
            *(f"booking_service.voice.{other}" for other in _VOICE_PLATFORMS if other != name),
        )
        for name in _VOICE_PLATFORMS
    },
    "api": (_REPOSITORIES, "sqlalchemy", "booking_service.persistence.models"),
    "web": (_REPOSITORIES, "sqlalchemy", "booking_service.persistence.models"),
    "cli": (_REPOSITORIES, "sqlalchemy", "booking_service.persistence.models"),
    # The worker is a loop that calls the delivery use cases (no repository, no transaction),
    # wiring in today's adapters from adapters/registry.py and nothing else of them.
    "worker": (
        _REPOSITORIES,
        "sqlalchemy",
        "booking_service.persistence.models",
        "booking_service.adapters.caldav",
        "booking_service.adapters.sms",
        "booking_service.adapters.email",
        "booking_service.adapters.webhooks",
    ),
    # A port is an interface: it does no I/O and knows neither its adapters nor its callers.
    "ports": (
        "booking_service.adapters",
        "booking_service.use_cases",
        "booking_service.persistence",
        "booking_service.runtime",
        *_FRONT_ENDS,
        "flask",
        "sqlalchemy",
        "httpx",
    ),
}
# A health check is about the infrastructure itself: it may reach the engine.
ALLOWED = {
    ("use_cases/health.py", "sqlalchemy"),
    ("use_cases/health.py", "booking_service.persistence.schema_check"),
}


def _runtime_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            elif hasattr(node, "body") and isinstance(node.body, list):
                visit(node.body)

    visit(tree.body)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_only_what_lies_below_it(layer):
    breaches = []
    for path in sorted((PACKAGE / layer).glob("*.py")):
        where = f"{layer}/{path.name}"
        for name in _runtime_imports(path):
            for banned in FORBIDDEN[layer]:
                if (name == banned or name.startswith(banned + ".")) and (
                    where,
                    banned,
                ) not in ALLOWED:
                    breaches.append(f"{where} imports {name}")
    assert breaches == []


def test_the_voice_platforms_are_found():
    """The voice layers above are built from the packages under voice/: without VAPI's the
    core's check would pass vacuously."""
    assert {"vapi", "retell", "elevenlabs"} <= set(_VOICE_PLATFORMS)
    assert FORBIDDEN["voice"][-len(_VOICE_PLATFORMS) :] == tuple(
        f"booking_service.voice.{name}" for name in _VOICE_PLATFORMS
    )


def test_use_cases_build_no_sentences_for_callers():
    """Refusals carry data; the VAPI layer words them. No use case raises the VAPI layer's
    ToolError or defines a spoken sentence constant."""
    for path in sorted((PACKAGE / "use_cases").glob("*.py")):
        text = path.read_text()
        assert "ToolError" not in text, path.name
        assert "I could not" not in text and "I can't" not in text, path.name


def _module_graph() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports at run time (imports
    inside functions included: a deferred import is still a dependency)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        tree = ast.parse(path.read_text())
        for node in list(ast.walk(tree)):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []  # type-only: not a dependency at run time
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_two_modules_import_each_other():
    """No import cycle anywhere in the package (#25): what a module needs lies below it."""
    graph = _module_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []
