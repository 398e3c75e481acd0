"""The idempotency ledger of tool calls: the claim under the limit key's lock, the change count,
and what one platform call changed (for its call report)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Text,
    bindparam,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from booking_service.domain.errors import LockTimeout
from booking_service.persistence.db import table
from booking_service.persistence.models import (
    UQ_TOOL_CALLS_ORG_TOOL_CALL,
    Organization,
    ToolCall,
)
from booking_service.persistence.repositories.common import LOCK_NOT_AVAILABLE
from booking_service.persistence.repositories.driver import HotStatement


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger remembers of an answered tool call, and for whom it answered."""

    fingerprint: str
    answer: dict | None
    vapi_call_id: str | None
    caller: str | None
    org_version: int | None = None  # the organization's config_version, read with it
    platform: str = "vapi"


_tool_calls = table(ToolCall)
_organizations = table(Organization)


def _claim_statement():
    values = select(
        bindparam("p_org"),
        bindparam("p_tool_call"),
        bindparam("p_call", type_=_tool_calls.c.vapi_call_id.type),
        bindparam("p_caller", type_=_tool_calls.c.caller.type),
        bindparam("p_limit_key"),
        bindparam("p_tool"),
        bindparam("p_fingerprint"),
        bindparam("p_platform"),
    )
    claim = (
        insert(_tool_calls)
        .from_select(
            [
                "org_id",
                "tool_call_id",
                "vapi_call_id",
                "caller",
                "limit_key",
                "tool_name",
                "fingerprint",
                "platform",
            ],
            values,
        )
        .on_conflict_do_nothing(constraint=UQ_TOOL_CALLS_ORG_TOOL_CALL)
        .returning(_tool_calls.c.id)
    )
    # Then, in the same round trip and only for a new claim (a repeat gets its stored answer
    # without waiting), the lock of the limit key (the VAPI call, else the caller, else the
    # request). It is held until commit, so `changes` counts race-free. Each transaction
    # takes one such lock, after its claim, so two tool calls cannot wait on each other.
    claimed = claim.cte("claim")
    lock = func.pg_advisory_xact_lock(func.hashtextextended(bindparam("p_lock"), 0))
    # And the organization's config_version, which confirms (or not) a cached organization
    # without a statement of its own (booking_service/persistence/org_cache.py).
    return select(claimed.c.id, lock.label("locked"), _org_version()).select_from(claimed)


def _org_version():
    return (
        select(_organizations.c.config_version)
        .where(_organizations.c.id == bindparam("p_org"))
        .scalar_subquery()
        .label("org_version")
    )


_CLAIM = HotStatement(_claim_statement())
# Changes of one limit key in the last day: a VAPI call never lasts that long, and a caller
# without call ids (no VAPI request lacks one) is not shut out for good.
_CHANGES = (
    select(func.count())
    .select_from(_tool_calls)
    .where(
        _tool_calls.c.org_id == bindparam("p_org"),
        _tool_calls.c.limit_key == bindparam("p_limit_key"),
        _tool_calls.c.tool_name == func.any(bindparam("p_tools", type_=ARRAY(Text))),
        _tool_calls.c.created_at > func.now() - literal_column("interval '1 day'"),
    )
    .scalar_subquery()
)
# The answer, and in the same round trip the change count (see record_answer).
_RECORD_ANSWER = HotStatement(
    update(_tool_calls)
    .where(
        _tool_calls.c.org_id == bindparam("p_org"),
        _tool_calls.c.tool_call_id == bindparam("p_tool_call"),
    )
    .values(answer=bindparam("p_answer", type_=_tool_calls.c.answer.type))
    .returning(_CHANGES.label("changes"))
)


@dataclass(frozen=True)
class Claim:
    """A tool call id reserved for this transaction."""

    org_version: int | None  # the organization's config_version when it was claimed


@dataclass(frozen=True)
class LedgerKey:
    """Identifies one tool call for the ledger, with the request it came from."""

    org_id: int
    tool_call_id: str
    vapi_call_id: str | None
    caller: str | None  # the verified caller's number
    limit_key: str  # what the change limit counts by (see ToolCall.limit_key)
    tool_name: str
    fingerprint: str
    # The config_version of a cached organization, to confirm; None: read in this request.
    org_version: int | None = None
    platform: str = "vapi"  # the voice platform that sent it (Invocation.platform)

    def values(self) -> dict:
        return {
            "p_org": self.org_id,
            "p_tool_call": self.tool_call_id,
            "p_call": self.vapi_call_id,
            "p_caller": self.caller,
            "p_limit_key": self.limit_key,
            "p_tool": self.tool_name,
            "p_fingerprint": self.fingerprint,
            "p_platform": self.platform,
        }


class ToolCallLedger:
    """The idempotency ledger, written in the same transaction as the tool's effects."""

    def __init__(self, session: Session):
        self.session = session

    def claim(self, key: LedgerKey) -> Claim | None:
        """Reserve the tool call id (with the organization's config_version read in the same
        statement); None when the id was answered before.

        A new claim then takes a transaction-scoped advisory lock on (organization, limit
        key), so changes of one VAPI call (or caller, or request) run one after the other.
        LockTimeout means the wait for either (a duplicate, or another change under the same
        key) outlasted lock_timeout.

        A concurrent transaction holding the same id makes this statement wait until that
        transaction ends (the unique index serialises them): then it is either answered
        (False) or rolled back (True, the claim is ours).
        """
        values = {**key.values(), "p_lock": f"{key.org_id}:{key.limit_key}"}
        try:
            row = _CLAIM.execute(self.session, values).first()
            return Claim(row.org_version) if row is not None else None
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise LockTimeout() from exc
            raise

    def get(self, org_id: int, tool_call_id: str) -> LedgerEntry | None:
        row = self.session.execute(
            select(
                ToolCall.fingerprint,
                ToolCall.answer,
                ToolCall.vapi_call_id,
                ToolCall.caller,
                _org_version(),
                ToolCall.platform,
            ).where(ToolCall.org_id == org_id, ToolCall.tool_call_id == tool_call_id),
            {"p_org": org_id},
        ).first()
        return LedgerEntry(*row) if row else None

    def record_answer(
        self,
        org_id: int,
        tool_call_id: str,
        answer: dict,
        *,
        limit_key: str,
        tool_names: tuple[str, ...],
    ) -> int:
        """Store the answer of a claimed tool call and return how many changing tool calls
        (`tool_names`, refused ones included) were made under this limit key in the last day,
        this transaction's own claim included.

        Call it after `claim` in the same transaction: the claim holds the key's lock, so this
        statement (with a snapshot taken after the lock was granted) sees every claim made
        under the key before, and parallel tool calls cannot all pass a limit. (Counting in
        the claim's own statement would not: its snapshot predates the lock.)
        """
        values = {
            "p_org": org_id,
            "p_tool_call": tool_call_id,
            "p_answer": answer,
            "p_limit_key": limit_key,
            "p_tools": list(tool_names),
        }
        return _RECORD_ANSWER.execute(self.session, values).scalar() or 0

    def answers_of_call(self, org_id: int, platform: str, call_id: str) -> list[tuple[str, dict]]:
        """(tool name, stored answer) of every answered tool call of one platform call, oldest
        first: what the call did, for its report."""
        rows = self.session.execute(
            select(_tool_calls.c.tool_name, _tool_calls.c.answer)
            .where(
                _tool_calls.c.org_id == org_id,
                # A call's limit key is "call:<id>", which the (org_id, limit_key) index covers.
                _tool_calls.c.limit_key == f"call:{call_id}",
                _tool_calls.c.vapi_call_id == call_id,
                _tool_calls.c.platform == platform,
                _tool_calls.c.answer.is_not(None),
            )
            .order_by(_tool_calls.c.created_at, _tool_calls.c.id)
            .limit(200)
        )
        return [(name, answer) for name, answer in rows]
