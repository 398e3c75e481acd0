"""POST /api/twilio/sms/ORG_ID: Twilio's inbound-message webhook, for opt-outs and replies.

Paste `https://<your host>/api/twilio/sms/<org id>` as the Messaging webhook of the number (or
Messaging Service) in Twilio's console. Every request is checked with the `twilio` package's
RequestValidator against X-Twilio-Signature (HMAC-SHA1 of the URL Twilio called and the form
fields, keyed with the organization's auth token): anything else gets 401. STOP, STOPALL,
UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE and OPTOUT opt the sender out of this organization's SMS;
START and UNSTOP opt back in; to those the answer is empty TwiML: Twilio's own opt-out handling
sends the confirmation text the carriers require (and its HELP answer to HELP and INFO). Any
other text is a reply to our texts (use_cases/sms_replies.py: 1 confirms, 2 cancels, YES takes
a waitlist offer), answered with one <Message> built by the `twilio` package's
MessagingResponse.

Each message is acted on once, by its MessageSid (recorded with the change): a retry or a
replayed signed request is answered the same and changes nothing. A signed request without a
MessageSid (Twilio always sends one) gets 400.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from booking_service.api.errors import error_response
from booking_service.domain.errors import DatabaseUnavailable
from booking_service.domain.normalize import mask_phone
from booking_service.persistence.secrets_box import SecretsUnavailable
from booking_service.persistence.unit_of_work import ConnectionScope
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.messaging import inbound_sms, twilio_auth_token

bp = Blueprint("twilio", __name__, url_prefix="/api/twilio")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
log = logging.getLogger(__name__)

_MAX_ID = 2**63 - 1
# Twilio's message sids are "SM"/"MM" and 32 hex digits; anything of that alphabet up to 64
# characters is accepted, in case Twilio widens them.
_MESSAGE_SID = re.compile(r"[A-Za-z0-9]{1,64}")


@bp.post("/sms/<int:org_id>")
def sms(org_id: int):
    """An SMS sent to the organization's number: apply STOP/START or the reply, answer TwiML."""
    if not 0 < org_id <= _MAX_ID:
        return error_response(401, "Missing or invalid signature.")
    # One pooled connection for the whole request (#30): the token's lookup (in autocommit
    # where no pooler needs a transaction), then the reply's transaction. Its units may use the
    # catalogue the worker keeps for an organization's version: the reply reads the
    # organization afresh in its own transaction, so the version it looks up is current.
    with runtime().connection_scope("sms", cached=True) as scope:
        return _answer(scope, org_id)


def _answer(scope: ConnectionScope, org_id: int):
    """The request on its one connection: check the signature, act once, answer TwiML."""
    try:
        token = twilio_auth_token(scope.reader(), org_id)
    except DatabaseUnavailable:
        return error_response(503, "Temporarily unavailable; Twilio will retry.")
    except SecretsUnavailable:
        log.error("inbound SMS: the stored auth token cannot be opened (SECRET_KEY?)")
        return error_response(503, "Temporarily unavailable; Twilio will retry.")
    signature = request.headers.get("X-Twilio-Signature", "")
    fields = request.form.to_dict()
    if token is None or not RequestValidator(token).validate(request.url, fields, signature):
        log.info("inbound SMS refused: missing or invalid signature")
        return error_response(401, "Missing or invalid signature.")
    message_sid = fields.get("MessageSid", "")
    if not _MESSAGE_SID.fullmatch(message_sid):
        log.warning("inbound SMS refused: signed but without a usable MessageSid")
        return error_response(400, "MessageSid is missing or malformed.")
    try:
        answered = inbound_sms(
            scope.uow(), org_id, fields.get("From", ""), fields.get("Body", ""), message_sid
        )
    except DatabaseUnavailable:
        return error_response(503, "Temporarily unavailable; Twilio will retry.")
    if answered.change:
        log.info(
            "inbound SMS %s from %s: %s",
            message_sid,
            mask_phone(fields.get("From")),
            answered.change,
        )
    if not answered.answer:
        return Response(EMPTY_TWIML, mimetype="text/xml")
    twiml = MessagingResponse()
    twiml.message(answered.answer)
    return Response(str(twiml), mimetype="text/xml")
