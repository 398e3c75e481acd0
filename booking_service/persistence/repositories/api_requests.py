"""The REST API's idempotency records: one row per (API key, Idempotency-Key), claimed first
and answered in the same transaction as the request's effects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from booking_service.domain.errors import LockTimeout
from booking_service.persistence.db import table
from booking_service.persistence.models import UQ_API_REQUESTS_KEY_IDEMPOTENCY, ApiRequest
from booking_service.persistence.repositories.common import LOCK_NOT_AVAILABLE
from booking_service.persistence.repositories.driver import HotStatement

_requests = table(ApiRequest)

# Every REST change claims its key and records its answer: both on the driver (#30).
_CLAIM = HotStatement(
    insert(_requests)
    .values(
        org_id=bindparam("p_org", type_=BigInteger),
        api_key_id=bindparam("p_key", type_=BigInteger),
        idempotency_key=bindparam("p_idempotency", type_=_requests.c.idempotency_key.type),
        fingerprint=bindparam("p_fingerprint", type_=_requests.c.fingerprint.type),
    )
    .on_conflict_do_nothing(constraint=UQ_API_REQUESTS_KEY_IDEMPOTENCY)
    .returning(_requests.c.id)
)
_RECORD = HotStatement(
    update(_requests)
    .where(
        _requests.c.api_key_id == bindparam("p_key", type_=BigInteger),
        _requests.c.idempotency_key == bindparam("p_idempotency"),
    )
    .values(
        status=bindparam("p_status", type_=_requests.c.status.type),
        answer=bindparam("p_answer", type_=_requests.c.answer.type),
    )
)


@dataclass(frozen=True)
class StoredRequest:
    """What was answered under a key, and for which request."""

    fingerprint: str
    status: int | None
    answer: dict | None


class ApiRequestRepository:
    """Claims and answers of Idempotency-Keys."""

    def __init__(self, session: Session):
        self.session = session

    def claim(self, org_id: int, api_key_id: int, key: str, fingerprint: str) -> bool:
        """True when this transaction now holds the key; False when it was answered before.

        A concurrent claim of the same key waits here (the unique index) until the first
        commits (then False) or rolls back (then True); past lock_timeout, LockTimeout."""
        try:
            claimed = _CLAIM.execute(
                self.session,
                {
                    "p_org": org_id,
                    "p_key": api_key_id,
                    "p_idempotency": key,
                    "p_fingerprint": fingerprint,
                },
            ).first()
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise LockTimeout() from exc
            raise
        return claimed is not None

    def get(self, api_key_id: int, key: str) -> StoredRequest | None:
        row = self.session.execute(
            select(_requests.c.fingerprint, _requests.c.status, _requests.c.answer).where(
                _requests.c.api_key_id == api_key_id, _requests.c.idempotency_key == key
            )
        ).first()
        return StoredRequest(*row) if row is not None else None

    def record(self, api_key_id: int, key: str, status: int, answer: dict) -> None:
        _RECORD.execute(
            self.session,
            {"p_key": api_key_id, "p_idempotency": key, "p_status": status, "p_answer": answer},
        )

    def forget(self, before: datetime) -> int:
        """Drop the answers kept since before `before`; how many."""
        result = self.session.execute(delete(_requests).where(_requests.c.created_at < before))
        return getattr(result, "rowcount", 0) or 0
