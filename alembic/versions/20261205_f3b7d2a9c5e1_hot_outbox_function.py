"""The booking path's largest statement as a PL/pgSQL function (#30): an event, its webhook
deliveries and its calendar pushes written, and the audience of its messages read, in one call.

Behind a transaction pooler (PgBouncer 1.18) nothing can be prepared, so PostgreSQL parsed and
planned this statement afresh on every booking: 520 us of server CPU per call against 180 us as
a function, whose plans PL/pgSQL keeps per server connection for every client the pooler puts
on it, with nothing named left in the session. Directly connected the two cost the same.
repositories/outbox.py calls it; a change to the statement is a new migration (CREATE OR
REPLACE FUNCTION).

Revision ID: f3b7d2a9c5e1
Revises: c27d5b2f8a41
Create Date: 2026-12-05 06:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f3b7d2a9c5e1"
down_revision: str | Sequence[str] | None = "c27d5b2f8a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The statement repositories/outbox.py sent before, its parameters now the function's:
# - the event, `data.phone` taken from the contact;
# - one pending delivery per endpoint that wants its type (a disabled endpoint's deliveries
#   wait until it is enabled: nothing is lost);
# - `p_calendar`: one pending push per calendar link that must hear of the change (the links
#   of the appointment's resource, and those already given the appointment: it moved to
#   another resource, so their calendar must drop it), the appointment as this transaction
#   left it;
# - what planning the messages needs of the organization and the contact (one row, none
#   without such contact).
# The data-modifying CTEs run whether or not they are read. `use_column`: the result's
# column names (business, timezone, phone, ...) are the tables' columns inside the query.
ADD_EVENT = """
CREATE FUNCTION booking_add_event(
    p_org bigint,
    p_contact bigint,
    p_appointment bigint,
    p_event_id text,
    p_type text,
    p_payload jsonb,
    p_calendar boolean
) RETURNS TABLE (
    business text,
    timezone text,
    phone_region character varying(2),
    reminder_minutes integer[],
    quiet_from time without time zone,
    quiet_until time without time zone,
    phone text,
    sms_enabled boolean,
    sms_countries text[],
    email_enabled boolean
)
LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH event AS (
        INSERT INTO outbox_events (org_id, event_id, type, payload)
        VALUES (
            p_org,
            p_event_id,
            p_type,
            jsonb_set(
                p_payload,
                '{data,phone}'::text[],
                coalesce(
                    (SELECT to_jsonb(c.phone) FROM contacts c
                     WHERE c.org_id = p_org AND c.id = p_contact),
                    'null'::jsonb
                )
            )
        )
        RETURNING outbox_events.id, outbox_events.org_id, outbox_events.type
    ),
    deliveries_added AS (
        INSERT INTO webhook_deliveries (org_id, event_id, endpoint_id, status, next_attempt_at)
        SELECT event.org_id, event.id, e.id, 'pending', now()
        FROM event
        JOIN webhook_endpoints e
          ON e.org_id = event.org_id AND (e.events IS NULL OR event.type = any(e.events))
    ),
    calendar_pushes_added AS (
        INSERT INTO calendar_pushes (org_id, link_id, appointment_id)
        SELECT l.org_id, l.id, p_appointment
        FROM calendar_links l
        WHERE p_calendar
          AND l.org_id = p_org
          AND l.push
          AND (
            l.resource_id = (
                SELECT a.resource_id FROM appointments a
                WHERE a.org_id = p_org AND a.id = p_appointment
            )
            OR EXISTS (
                SELECT 1 FROM calendar_pushes cp
                WHERE cp.org_id = p_org AND cp.link_id = l.id AND cp.appointment_id = p_appointment
            )
          )
    )
    SELECT o.name,
           o.timezone,
           o.phone_region,
           o.reminder_minutes,
           o.quiet_from,
           o.quiet_until,
           c.phone,
           coalesce(m.sms_enabled, false),
           m.sms_countries,
           coalesce(m.email_enabled, false)
    FROM organizations o
    JOIN contacts c ON c.org_id = o.id AND c.id = p_contact
    LEFT JOIN messaging_settings m ON m.org_id = o.id
    WHERE o.id = p_org;
END
$function$
"""


def upgrade() -> None:
    op.execute(ADD_EVENT)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION booking_add_event(bigint, bigint, bigint, text, text, jsonb, boolean)"
    )
