"""The tool registry: each VAPI function name maps to its argument schema and handler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from marshmallow import Schema, ValidationError

from booking_service.errors import ToolError
from booking_service.services.booking import BookingRequest, book_appointment
from booking_service.services.contacts import identify_caller, require_identity
from booking_service.services.orgs import OrgInfo
from booking_service.services.times import parse_start
from booking_service.services.tool_calls import Answer, ToolCallKey, answer_once, fingerprint
from booking_service.unit_of_work import AbstractUnitOfWork
from booking_service.vapi import replies
from booking_service.vapi.envelope import ToolInvocation
from booking_service.vapi.schemas import BookAppointmentArgs, spoken_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolContext:
    """Everything a tool handler may use besides its arguments."""

    org: OrgInfo
    uow_factory: Callable[[], AbstractUnitOfWork]
    caller_number: str | None
    vapi_call_id: str | None
    now: datetime


@dataclass(frozen=True)
class Tool:
    """A VAPI function tool: name, argument schema, handler and what VAPI says meanwhile."""

    name: str
    description: str
    schema: type[Schema]
    handler: Callable[[ToolContext, ToolInvocation, dict], Answer]
    request_start: str


def _book(ctx: ToolContext, call: ToolInvocation, args: dict) -> Answer:
    who = identify_caller(
        region=ctx.org.phone_region,
        name=args["name"],
        phone_argument=args["phone"],
        email_argument=args["email"],
        caller_number=ctx.caller_number,
    )
    require_identity(who)
    starts_at, ambiguous = parse_start(args["start"], ctx.org.zone, ctx.now)
    request = BookingRequest(
        who=who,
        starts_at=starts_at,
        duration_minutes=args["durationMinutes"],
        service=args["service"],
        notes=args["notes"],
    )
    key = ToolCallKey(
        org_id=ctx.org.id,
        tool_call_id=call.id,
        vapi_call_id=ctx.vapi_call_id,
        tool_name=call.name,
        fingerprint=fingerprint(call.name, call.arguments),
    )

    def perform(uow: AbstractUnitOfWork) -> Answer:
        booking = book_appointment(
            uow, ctx.org, request, vapi_call_id=ctx.vapi_call_id, tool_call_id=call.id
        )
        return replies.booked(ctx.org, booking, ambiguous=ambiguous)

    return answer_once(ctx.uow_factory(), key, perform)


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            name="bookAppointment",
            description=(
                "Book an appointment for the caller. Confirm the name and the date and time "
                "with the caller first."
            ),
            schema=BookAppointmentArgs,
            handler=_book,
            request_start="One moment while I book that.",
        ),
    )
}


def run_tool(ctx: ToolContext, call: ToolInvocation) -> Answer:
    """Answer one tool call; caller mistakes become speakable errors, never exceptions."""
    if not call.id:
        return replies.error("I could not act on this request because it has no id.")
    tool = TOOLS.get(call.name or "")
    if tool is None:
        offered = ", ".join(sorted(TOOLS))
        return replies.error(
            f"I can't do {(call.name or 'that')[:64]!r} here. The tools I have are: {offered}."
        )
    if call.arguments is None:
        return replies.error(
            "I could not read the details of this request. Please try again with the "
            "name, phone or email, and start time."
        )
    try:
        args = tool.schema().load(call.arguments)
        return tool.handler(ctx, call, args)
    except ValidationError as exc:
        return replies.error(spoken_errors(exc))
    except ToolError as exc:
        return replies.error(exc.message)
