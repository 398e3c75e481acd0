"""The tool registry: each function name maps to its argument schema and handler.

Handlers read their arguments (voice/arguments.py, no database), then call one use case with
an unentered unit of work; they never open a transaction themselves. Tools that change
something (book, cancel, reschedule, and lookups by reference) run as steps inside the
idempotency use case (answer_once), so a repeated invocation key returns the stored answer;
read-only tools (availability, find) call their use case directly. Refusals come back as data
and are worded in voice/refusals.py.

Whose data a call may reach is decided from proof only (see use_cases/appointments.py): the
verified caller ID of a phone call (`ToolContext.verified_number`), or a booking reference
with the phone or email it was booked with. Arguments are claims.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from marshmallow import Schema, ValidationError

from booking_service.domain.errors import InputError, Refusal, WaitlistNeedsVerifiedCaller
from booking_service.domain.times import ParsedStart
from booking_service.persistence.unit_of_work import AbstractUnitOfWork
from booking_service.use_cases.appointments import (
    Proof,
    cancel_appointment,
    find_appointments,
    find_by_reference,
    reschedule_appointment,
)
from booking_service.use_cases.availability import check_availability
from booking_service.use_cases.booking import BookingRequest, book_appointment
from booking_service.use_cases.orgs import OrgInfo
from booking_service.use_cases.tool_calls import (
    Answer,
    ChangeLimit,
    ToolCallKey,
    answer_once,
    fingerprint,
)
from booking_service.use_cases.waitlist import JoinRequest, join_waitlist
from booking_service.voice import refusals, replies
from booking_service.voice.arguments import (
    ToolError,
    identify_caller,
    local_day_or_time,
    parse_start,
    read_email,
    read_phone,
)
from booking_service.voice.invocation import Invocation
from booking_service.voice.schemas import (
    BookAppointmentArgs,
    CancelAppointmentArgs,
    CheckAvailabilityArgs,
    FindAppointmentsArgs,
    JoinWaitlistArgs,
    RescheduleAppointmentArgs,
    spoken_errors,
)

log = logging.getLogger(__name__)

# checkAvailability without dates looks this many days ahead.
DEFAULT_WINDOW_DAYS = 14


@dataclass
class Confirmation:
    """Whether a statement of this request has confirmed the version of an organization
    taken from the worker's cache (org_cache); set when a tool call's claim did."""

    done: bool = False


@dataclass(frozen=True)
class ToolContext:
    """Everything a tool handler may use besides its arguments."""

    org: OrgInfo
    uow_factory: Callable[[], AbstractUnitOfWork]
    # The caller ID (E.164) of a phone call, the only caller identity that is proof; None on
    # web calls, chats, and for withheld or unreadable numbers.
    verified_number: str | None
    call_id: str | None  # the platform's call (Invocation.call_id)
    now: datetime
    max_changes_per_call: int = 6
    deadline: float | None = None  # time.monotonic() by which the request must answer
    request_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    confirmation: Confirmation = field(default_factory=Confirmation)

    @property
    def limit_key(self) -> str:
        """What the per-call change limit counts by: the platform's call, else the verified
        caller, else this request (a request without a call id must not escape the limit)."""
        if self.call_id is not None:
            return f"call:{self.call_id}"
        if self.verified_number is not None:
            return f"caller:{self.verified_number}"
        return f"request:{self.request_key}"


@dataclass(frozen=True)
class Tool:
    """A function tool: name, argument schema, handler and what the assistant says meanwhile."""

    name: str
    description: str
    schema: type[Schema]
    handler: Callable[[ToolContext, Invocation, dict], Answer]
    request_start: str
    action: str  # "I could not <action> because ..." for argument errors


def _proof(ctx: ToolContext, args: dict) -> Proof:
    """What this request can show. A phone or email argument counts only beside a reference
    and without a verified caller, so it is read (and an unreadable one refused) only then."""
    reference = args.get("reference")
    if ctx.verified_number is not None or not reference:
        return Proof(verified_number=ctx.verified_number, reference=reference)
    return Proof(
        verified_number=None,
        reference=reference,
        phone=read_phone(args.get("phone"), ctx.org.phone_region),
        email=read_email(args.get("email")),
    )


# Tools that change the diary, and lookups by reference (each a guess at a reference); a model
# stuck in a loop must not make dozens of changes, nor a caller dozens of guesses.
CHANGING_TOOLS = (
    "bookAppointment",
    "cancelAppointment",
    "rescheduleAppointment",
    "findAppointments",
    "joinWaitlist",
)


def _refused(ctx: ToolContext, refusal: Refusal) -> Answer:
    return replies.error(refusals.sentence(refusal, ctx.org, ctx.now))


def _once(ctx: ToolContext, call: Invocation, perform) -> Answer:
    if call.key is None or call.tool is None:  # run_tool answers those before any handler
        raise ValueError("a tool call without a usable key or a name")
    key = ToolCallKey(
        org_id=ctx.org.id,
        tool_call_id=call.key,
        vapi_call_id=ctx.call_id,
        caller=ctx.verified_number,
        limit_key=ctx.limit_key,
        tool_name=call.tool,
        fingerprint=fingerprint(call.tool, call.arguments),
        # The claim reads the organization's version: a cached one is confirmed there.
        org_version=ctx.org.version if ctx.org.cached else None,
        platform=call.platform,
    )
    answer = answer_once(
        ctx.uow_factory(),
        key,
        perform,
        refused=lambda refusal: _refused(ctx, refusal),
        change_limit=ChangeLimit(ctx.max_changes_per_call, CHANGING_TOOLS),
        deadline=ctx.deadline,
    )
    ctx.confirmation.done = True
    return answer


def _book(ctx: ToolContext, call: Invocation, args: dict) -> Answer:
    # Booking for another number (a parent for a child) is allowed; whose number it is
    # decides what the booking may change or reveal.
    who = identify_caller(
        region=ctx.org.phone_region,
        name=args["name"],
        phone_argument=args.get("phone"),
        email_argument=args.get("email"),
        verified_number=ctx.verified_number,
    )
    start = parse_start(args["start"], ctx.org.zone, ctx.now)
    request = BookingRequest(
        who=who,
        start=start,
        duration_minutes=args["durationMinutes"],
        service=args["service"],
        notes=args["notes"],
        resource=args["resource"],
        own_number=ctx.verified_number is not None and who.phone == ctx.verified_number,
        limit_unverified=True,
    )

    def perform(uow: AbstractUnitOfWork) -> Answer:
        booking = book_appointment(
            uow, ctx.org, request, now=ctx.now, vapi_call_id=ctx.call_id, tool_call_id=call.key
        )
        return replies.booked(ctx.org, booking, ambiguous=start.ambiguous)

    return _once(ctx, call, perform)


def _availability(ctx: ToolContext, call: Invocation, args: dict) -> Answer:
    today = ctx.now.astimezone(ctx.org.zone).date()
    window_start = window_end = None
    if args["date"]:
        first, _ = local_day_or_time(args["date"], ctx.org.zone, ctx.now, "the date")
        last = first
    else:
        first, window_start = (
            local_day_or_time(args["from_"], ctx.org.zone, ctx.now, "the start of the window")
            if args["from_"]
            else (today, None)
        )
        if args["to"]:
            last, window_end = local_day_or_time(
                args["to"], ctx.org.zone, ctx.now, "the end of the window"
            )
        else:
            last = first + timedelta(days=DEFAULT_WINDOW_DAYS - 1)
    if last < first:
        raise ToolError("The end of the window is before its start. Please check the dates.")
    last = min(last, first + timedelta(days=62))  # bounded work per call
    found = check_availability(
        ctx.uow_factory(),
        ctx.org,
        first=first,
        last=last,
        window_start=window_start,
        window_end=window_end,
        service=args["service"],
        minutes=args["durationMinutes"],
        resource=args["resource"],
        now=ctx.now,
        deadline=ctx.deadline,
    )
    return replies.availability(ctx.org, found)


def _find(ctx: ToolContext, call: Invocation, args: dict) -> Answer:
    proof = _proof(ctx, args)
    if not proof.by_reference:
        return replies.appointments(
            ctx.org, find_appointments(ctx.uow_factory(), ctx.org, proof, ctx.now)
        )

    # A lookup by reference is a guess until it matches: it is recorded and counted like a
    # change, so one call cannot try references without end.
    def perform(uow: AbstractUnitOfWork) -> Answer:
        return replies.appointments(ctx.org, find_by_reference(uow, ctx.org, proof))

    return _once(ctx, call, perform)


def _current_start(ctx: ToolContext, args: dict) -> ParsedStart | None:
    return parse_start(args["start"], ctx.org.zone, ctx.now) if args.get("start") else None


def _cancel(ctx: ToolContext, call: Invocation, args: dict) -> Answer:
    proof = _proof(ctx, args)
    start = _current_start(ctx, args)

    def perform(uow: AbstractUnitOfWork) -> Answer:
        outcome = cancel_appointment(
            uow, ctx.org, proof, start=start, reason=args["reason"], now=ctx.now
        )
        return replies.cancelled(ctx.org, outcome)

    return _once(ctx, call, perform)


def _reschedule(ctx: ToolContext, call: Invocation, args: dict) -> Answer:
    proof = _proof(ctx, args)
    start = _current_start(ctx, args)
    new_start = parse_start(args["newStart"], ctx.org.zone, ctx.now)

    def perform(uow: AbstractUnitOfWork) -> Answer:
        outcome = reschedule_appointment(
            uow,
            ctx.org,
            proof,
            start=start,
            new_start=new_start,
            now=ctx.now,
        )
        return replies.rescheduled(ctx.org, outcome, ambiguous=new_start.ambiguous)

    return _once(ctx, call, perform)


_PARTS_OF_DAY = ("any", "morning", "afternoon", "evening")


def _waitlist_window(ctx: ToolContext, args: dict) -> tuple[datetime, datetime]:
    """The local window a caller waits in: a whole day, or from/to (dates or date-times)."""
    zone = ctx.org.zone

    def midnight(day) -> datetime:
        return datetime.combine(day, datetime.min.time()).replace(tzinfo=zone)

    if args["date"]:
        day, _ = local_day_or_time(args["date"], zone, ctx.now, "the date")
        return midnight(day), midnight(day + timedelta(days=1))
    if not args["from_"]:
        raise ToolError("Which day, or from when until when, would the caller like?")
    first, start = local_day_or_time(args["from_"], zone, ctx.now, "the start of the window")
    if args["to"]:
        last, end = local_day_or_time(args["to"], zone, ctx.now, "the end of the window")
    else:
        last, end = first, None
    window = (start or midnight(first), end or midnight(last + timedelta(days=1)))
    if window[1] <= window[0]:
        raise ToolError("The end of the window is before its start. Please check the dates.")
    return window


def _join_waitlist(ctx: ToolContext, call: Invocation, args: dict) -> Answer:
    # Offers are texted: only the number a phone call verifiably comes from may be put on the
    # list, never one merely said (that would let anyone subscribe a stranger).
    if ctx.verified_number is None:
        return _refused(ctx, WaitlistNeedsVerifiedCaller())
    part = (args["partOfDay"] or "any").lower()
    if part not in _PARTS_OF_DAY:
        raise ToolError("The part of the day must be morning, afternoon, evening or any.")
    start, end = _waitlist_window(ctx, args)
    request = JoinRequest(
        name=args["name"],
        service=args["service"],
        duration_minutes=args["durationMinutes"],
        window_start=start,
        window_end=end,
        part_of_day=part,
    )

    def perform(uow: AbstractUnitOfWork) -> Answer:
        joined = join_waitlist(uow, ctx.org, ctx.verified_number, request, now=ctx.now)
        return replies.waitlisted(ctx.org, joined)

    try:
        return _once(ctx, call, perform)
    except InputError as exc:
        what = (exc.field or "request").replace("_", " ")
        raise ToolError(
            f"I could not add you to the waitlist because the {what} {exc.problem}."
        ) from None


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            name="checkAvailability",
            description=(
                "Find free appointment times. Give a date (YYYY-MM-DD) or a from/to window, and "
                "the service or length if known. Offer the caller the returned times."
            ),
            schema=CheckAvailabilityArgs,
            handler=_availability,
            request_start="Let me check the diary.",
            action="check the diary",
        ),
        Tool(
            name="bookAppointment",
            description=(
                "Book an appointment for the caller. Confirm the name and the date and time "
                "with the caller first; prefer a time returned by checkAvailability."
            ),
            schema=BookAppointmentArgs,
            handler=_book,
            request_start="One moment while I book that.",
            action="make the booking",
        ),
        Tool(
            name="findAppointments",
            description=(
                "List the caller's upcoming appointments. On a phone call these are the ones "
                "booked under the number calling. Otherwise give the booking reference with "
                "the phone number or email it was booked with."
            ),
            schema=FindAppointmentsArgs,
            handler=_find,
            request_start="Let me look that up.",
            action="look up the appointments",
        ),
        Tool(
            name="cancelAppointment",
            description=(
                "Cancel one of the caller's own appointments, identified by its reference or "
                "its current start time. If the call is not from the phone it was booked "
                "with, give the reference with that phone number or email. Confirm first."
            ),
            schema=CancelAppointmentArgs,
            handler=_cancel,
            request_start="One moment while I cancel that.",
            action="cancel the appointment",
        ),
        Tool(
            name="rescheduleAppointment",
            description=(
                "Move one of the caller's own appointments (by reference or current start) to "
                "newStart; if the call is not from the phone it was booked with, give the "
                "reference with that phone number or email. If the new time is taken the "
                "original booking stays."
            ),
            schema=RescheduleAppointmentArgs,
            handler=_reschedule,
            request_start="One moment while I move that.",
            action="move the appointment",
        ),
        Tool(
            name="joinWaitlist",
            description=(
                "When no time suits the caller, put them on the waitlist for a date or a "
                "from/to window (and a part of the day): if a time opens, they get a text and "
                "can reply YES within 15 minutes to take it. Only for a phone call from the "
                "caller's own phone; at most 3 waits per caller."
            ),
            schema=JoinWaitlistArgs,
            handler=_join_waitlist,
            request_start="One moment while I add you to the waitlist.",
            action="add you to the waitlist",
        ),
    )
}


# One schema instance per tool, built once: building one costs more than loading with it
# (#17). Loading keeps no state on the instance (marshmallow 4 has no schema context; its
# errors live in each call's own store), so threads share them; tests/unit/test_schemas_shared.py
# loads from many threads at once.
LOADERS: dict[str, Schema] = {name: tool.schema() for name, tool in TOOLS.items()}


def run_tool(ctx: ToolContext, call: Invocation) -> Answer:
    """Answer one tool call; caller mistakes become speakable errors, never exceptions."""
    if not call.key:
        return replies.error("I could not act on this request because it has no usable id.")
    tool = TOOLS.get(call.tool or "")
    if tool is None:
        offered = ", ".join(TOOLS)
        return replies.error(
            f"I can't do {(call.tool or 'that')[:64]!r} here. The tools I have are: {offered}."
        )
    if call.arguments is None:
        return replies.error(
            "I could not read the details of this request. Please try again with the "
            "details as named fields."
        )
    try:
        args = LOADERS[tool.name].load(call.arguments)
        return tool.handler(ctx, call, args)
    except ValidationError as exc:
        return replies.error(spoken_errors(exc, tool.action))
    except ToolError as exc:
        return replies.error(exc.message)
    except Refusal as exc:
        return _refused(ctx, exc)
