"""The bench's signed scenarios (#30): a Retell booking and the two-way SMS reply.

wrk's Lua has no HMAC, so each request is made and signed here, right before its run, and
written one per line for bench/replay.lua (`path TAB content-type TAB header TAB value TAB
body`), which sends each line once. Retell's signature carries its time (a 5-minute window):
the pool is signed seconds before a run of a few seconds. Also the seeding the two scenarios and
the Google-linked one need, straight in SQL like the bench's other pre-fills.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from twilio.request_validator import RequestValidator

from tests.support import stack
from tests.support.platforms import retell_body, retell_signature

SLOTS_PER_DAY = 287  # 00:00 .. 23:50, as bench/book.lua
# The fixed credentials the bench stores for its organization (a throwaway cluster).
RETELL_KEY = "key_bench_retell_0123456789abcdef"
TWILIO_TOKEN = "bench_twilio_auth_token_0123456789"  # noqa: S105 - a throwaway cluster's


def slot_epoch(base: int, k: int) -> int:
    """The k-th 5-minute start from `base` on the bench resource's grid (as bench/book.lua)."""
    return base + 86400 * (k // SLOTS_PER_DAY) + 300 * (k % SLOTS_PER_DAY)


def phone(n: int, exchange_from: int) -> str:
    """A valid NANP number in 415 (exchanges from `exchange_from`), distinct per n < 700,000."""
    return f"+1415{exchange_from + n // 10000 % 70:03d}{n % 10000:04d}"


def retell_pool(path: Path, org: int, base: int, count: int) -> Path:
    """`count` Retell bookAppointment requests, signed now: a new call id, an inbound phone
    call from a caller of its own, and a free start each (the bench resource's k-th slot)."""
    lines = []
    for k in range(count):
        start = datetime.fromtimestamp(slot_epoch(base, k), UTC).strftime("%Y-%m-%dT%H:%M:00Z")
        args = {"name": "Bench Caller", "start": start, "durationMinutes": 5, "resource": "Bench"}
        body = retell_body(
            "bookAppointment",
            args,
            caller=phone(k, 300),
            call_id=f"retell-{base}-{k}",
        )
        raw = json.dumps(body, separators=(",", ":"))
        signature = retell_signature(raw.encode(), RETELL_KEY)
        lines.append(
            f"/api/retell/{org}/tools\tapplication/json\tX-Retell-Signature\t{signature}\t{raw}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def seed_replies(url: str, org: int, resource: int, first_epoch: int, count: int) -> float:
    """`count` callers, each with one upcoming booking (on `resource`, from `first_epoch`,
    past the other scenarios' days) and the SMS confirmation of it sent: what a reply "1"
    confirms. Returns the seconds taken."""
    started = time.monotonic()
    with psycopg.connect(stack.psycopg_conninfo(url), autocommit=True) as conn:
        conn.execute(
            "WITH c AS (INSERT INTO contacts (org_id, phone, name) "
            "  SELECT %(org)s, '+1415' || lpad((380 + i / 10000 %% 70)::text, 3, '0') "
            "    || lpad((i %% 10000)::text, 4, '0'), 'Replier ' || i "
            "  FROM generate_series(0, %(n)s - 1) i RETURNING id, phone, name), "
            "a AS (INSERT INTO appointments (org_id, contact_id, resource_id, reference, "
            "  starts_at, ends_at, blocked_until, status, name) "
            "  SELECT %(org)s, c.id, %(resource)s, 'BR' || c.id, s, s + interval '5 minutes', "
            "    s + interval '5 minutes', 'booked', c.name "
            "  FROM c, LATERAL (SELECT to_timestamp(%(first)s + 300 * c.id) AS s) t "
            "  RETURNING id, contact_id) "
            "INSERT INTO notifications (org_id, appointment_id, kind, channel, to_address, "
            "  due_at, status, attempted_at, sent_at, attempts, body) "
            "SELECT %(org)s, a.id, 'confirmation', 'sms', c.phone, now(), 'sent', now(), now(), "
            "  1, 'Bench Clinic: booked' FROM a JOIN c ON c.id = a.contact_id",
            {"org": org, "resource": resource, "n": count, "first": first_epoch},
        )
        conn.execute("VACUUM ANALYZE contacts")
        conn.execute("VACUUM ANALYZE appointments")
        conn.execute("VACUUM ANALYZE notifications")
    return time.monotonic() - started


def sms_pool(path: Path, port: int, org: int, count: int, tag: int) -> Path:
    """`count` replies "1" from the seeded callers (bench/signed.seed_replies), each with a
    MessageSid of its own, signed with twilio's RequestValidator for the URL nginx serves."""
    sms_path = f"/api/twilio/sms/{org}"
    url = f"http://127.0.0.1:{port}{sms_path}"
    validator = RequestValidator(TWILIO_TOKEN)
    lines = []
    for k in range(count):
        form, signature = sms_reply(validator, url, k, tag)
        lines.append(
            f"{sms_path}\tapplication/x-www-form-urlencoded\tX-Twilio-Signature\t{signature}"
            f"\t{urlencode(form)}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def sms_reply(validator: RequestValidator, url: str, k: int, tag: int) -> tuple[dict, str]:
    """The reply "1" of the k-th seeded caller (seed_replies), with a MessageSid of its own,
    and its X-Twilio-Signature for `url` (the address the service is called at)."""
    form = {
        "From": f"+1415{380 + k // 10000 % 70:03d}{k % 10000:04d}",
        "To": "+14155550100",
        "Body": "1",
        "MessageSid": f"SM{tag:012d}{k:020d}",
    }
    return form, validator.compute_signature(url, form)


def link_google(url: str, org: int, resource: int, around_epoch: int) -> int:
    """A blocking Google Calendar link on `resource` (provider "google", a sealed-looking
    refresh token no Google will ever see), last read now and allowed a week of staleness,
    with 1,000 busy times around (not inside) the days the scenario books. Nothing calls
    Google during the run: no worker runs, and the booking path reads only our tables."""
    with psycopg.connect(stack.psycopg_conninfo(url), autocommit=True) as conn:
        link = conn.execute(
            "INSERT INTO calendar_links (org_id, resource_id, provider, url, account, "
            "calendar_id, password, push, block, max_staleness_minutes, last_good_sync_at, "
            "last_poll_at) VALUES (%s, %s, 'google', "
            "'https://www.googleapis.com/calendar/v3/calendars/primary', 'bench@example.com', "
            "'primary', 'not-a-real-refresh-token', true, true, 10080, now(), now()) "
            "RETURNING id",
            (org, resource),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO calendar_busy (org_id, link_id, resource_id, starts_at, ends_at) "
            "SELECT %(org)s, %(link)s, %(resource)s, s, s + interval '1 hour' FROM ("
            "  SELECT to_timestamp(%(around)s - 86400 * (1 + i)) AS s FROM generate_series(0, 499) i"
            "  UNION ALL"
            "  SELECT to_timestamp(%(around)s + 86400 * (40 + i)) FROM generate_series(0, 499) i"
            ") t",
            {"org": org, "link": link, "resource": resource, "around": around_epoch},
        )
        conn.execute("VACUUM ANALYZE calendar_busy")
    return link


def google_untouched(url: str, link: int) -> bool:
    """The Google link as seeded after the run: never polled again, no error recorded (the
    booking path did not call Google; a call would have failed on the fake token)."""
    with psycopg.connect(stack.psycopg_conninfo(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT last_poll_at = last_good_sync_at AND last_error IS NULL "
            "AND consecutive_failures = 0 AND NOT reconnect_needed FROM calendar_links "
            "WHERE id = %s",
            (link,),
        ).fetchone()
    return bool(row and row[0])
