"""Retell custom-function definitions generated from the schemas that validate the arguments
(`flask --app wsgi retell tools --url URL`), so the two cannot drift apart.

Each is a Retell `GeneralToolCustomTool`: the arguments under `args` (args_at_root off, so the
call object with its id and caller arrives too), a 20 s timeout instead of Retell's 2 minutes
(the caller is waiting), and the sentence spoken while it runs.
"""

from __future__ import annotations

from booking_service.voice.schemas import parameters_schema
from booking_service.voice.tools import TOOLS

TIMEOUT_MS = 20_000


def tool_url(base_url: str, org_id: int) -> str:
    """POST /api/retell/ORG_ID/tools under the service's public base URL."""
    return f"{base_url.rstrip('/')}/api/retell/{org_id}/tools"


def tool_definitions(url: str) -> list[dict]:
    """Every tool the webhook dispatches, as Retell custom-tool definitions (`url`: the
    organization's POST /api/retell/ORG_ID/tools)."""
    return [
        {
            "type": "custom",
            "name": tool.name,
            "description": tool.description,
            "url": url,
            "method": "POST",
            "parameters": parameters_schema(tool.schema),
            "args_at_root": False,
            "timeout_ms": TIMEOUT_MS,
            "speak_during_execution": True,
            "execution_message_description": tool.request_start,
            "execution_message_type": "static_text",
            "speak_after_execution": True,
        }
        for tool in TOOLS.values()
    ]
