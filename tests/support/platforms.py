"""The three voice front ends driven the same way, so one behaviour test runs through each.

`FRONTS[name].call(client, org, tool, args, caller=..., call_id=..., phone_call=...)` sends one
tool call the way that platform does and returns a `Heard`: the structured result (a dict) or
the error sentence. Retell requests are signed with HMAC directly (the SDK's own sign() does
not match its verify()); ElevenLabs carries the organization's bearer secret and the system
fields our exported configs map in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from booking_service.use_cases.voice_platforms import update_platform_settings
from tests.support.helpers import envelope, tool_call

RETELL_KEY = "key_retell_test_0123456789abcdef"


def retell_signature(body: bytes, key: str = RETELL_KEY, ms: int | None = None) -> str:
    """`v=<ms>,d=<hex HMAC-SHA256(key, body + ms)>`, as Retell signs."""
    stamp = str(ms if ms is not None else int(time.time() * 1000))
    digest = hmac.new(key.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    return f"v={stamp},d={digest}"


def enable_retell(runtime, org, key: str = RETELL_KEY) -> None:
    update_platform_settings(runtime.uow(), org.id, retell_api_key=key)


def retell_body(
    tool: str,
    args: dict,
    *,
    caller: str | None,
    call_id: str,
    phone_call: bool = True,
    direction: str = "inbound",
) -> dict:
    call: dict = {
        "call_id": call_id,
        "call_type": "phone_call" if phone_call else "web_call",
        "agent_id": "oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD",
        "call_status": "ongoing",
        "metadata": {},
        "transcript": "User: hello",
    }
    if phone_call:
        call.update(direction=direction, to_number="+14155550100")
        if caller:
            call["from_number"] = caller
    elif caller:  # Retell's web calls carry no number; one that does is not believed either
        call["from_number"] = caller
    return {"name": tool, "call": call, "args": args}


def post_retell(client, org, body, *, signature: str | None = "sign", key: str = RETELL_KEY):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers["X-Retell-Signature"] = retell_signature(raw, key)
    elif signature is not None:
        headers["X-Retell-Signature"] = signature
    return client.post(f"/api/retell/{org.id}/tools", data=raw, headers=headers)


def elevenlabs_body(args: dict, *, caller: str | None, call_id: str, phone_call: bool = True):
    body = {**args, "conversation_id": call_id}
    if caller:
        body["caller_id"] = caller
    if phone_call:
        body["call_sid"] = "CA" + hashlib.sha256(call_id.encode()).hexdigest()[:32]
    return body


def post_elevenlabs(client, org, tool: str, body, *, secret: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is None:
        secret = org.secret
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return client.post(f"/api/elevenlabs/tools/{tool}", data=raw, headers=headers)


@dataclass(frozen=True)
class Heard:
    """What the assistant got: the structured result, or the error sentence."""

    result: dict | None = None
    error: str | None = None


def _vapi(response) -> Heard:
    assert response.status_code == 200, response.get_data(as_text=True)
    (entry,) = response.get_json()["results"]
    if "error" in entry:
        return Heard(error=entry["error"])
    return Heard(result=json.loads(entry["result"]))


def _structured(response) -> Heard:
    """Retell and ElevenLabs: `{"result": sentence, ...fields}`; errors carry status error."""
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body["result"], str) and "\n" not in body["result"]
    if body.get("status") == "error":
        return Heard(error=body["result"])
    return Heard(result={**body, "message": body["result"]})


class Front:
    name = ""

    def setup(self, runtime, org) -> None:
        """What the organization must configure before this platform can call."""

    def call(self, client, org, tool, args, *, caller, call_id, phone_call=True) -> Heard:
        raise NotImplementedError


class Vapi(Front):
    name = "vapi"

    def call(self, client, org, tool, args, *, caller, call_id, phone_call=True) -> Heard:
        body = envelope(tool_call(tool, **args), customer=caller, call_id=call_id)
        if not phone_call:
            body["message"]["call"]["type"] = "webCall"
        return _vapi(
            client.post(
                "/api/vapi/tools",
                data=json.dumps(body),
                headers={"Content-Type": "application/json", **org.headers},
            )
        )


class Retell(Front):
    name = "retell"

    def setup(self, runtime, org) -> None:
        enable_retell(runtime, org)

    def call(self, client, org, tool, args, *, caller, call_id, phone_call=True) -> Heard:
        body = retell_body(tool, args, caller=caller, call_id=call_id, phone_call=phone_call)
        return _structured(post_retell(client, org, body))


class ElevenLabs(Front):
    name = "elevenlabs"

    def call(self, client, org, tool, args, *, caller, call_id, phone_call=True) -> Heard:
        body = elevenlabs_body(args, caller=caller, call_id=call_id, phone_call=phone_call)
        return _structured(post_elevenlabs(client, org, tool, body))


FRONTS: dict[str, Front] = {front.name: front for front in (Vapi(), Retell(), ElevenLabs())}
