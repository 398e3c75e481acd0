"""Re-sealing every stored credential under the current SECRET_KEY (after a rotation)."""

from __future__ import annotations

from booking_service.persistence.unit_of_work import AbstractUnitOfWork


def reseal_all(uow: AbstractUnitOfWork) -> dict[str, int]:
    """Re-seal Twilio auth tokens, VAPI HMAC keys, webhook signing secrets and calendar
    passwords with the current key, in one transaction; returns how many of each."""
    box = uow.secrets
    with uow:
        tokens = uow.notifications.sealed_tokens()
        for org_id, sealed in tokens:
            uow.notifications.save_settings(org_id, {"twilio_auth_token": box.reseal(sealed)})
        keys = uow.organizations.hmac_keys()
        for org_id, key in keys:
            uow.organizations.set_hmac_key(org_id, box.reseal(key))
        endpoints = uow.outbox.all_endpoint_secrets()
        for endpoint_id, secret, previous in endpoints:
            uow.outbox.update_endpoint(
                endpoint_id,
                secret=box.reseal(secret),
                previous_secret=box.reseal(previous) if previous else None,
            )
        passwords = uow.calendars.all_passwords()
        for link_id, sealed in passwords:
            uow.calendars.update_link(link_id, password=box.reseal(sealed))
        uow.commit()
    return {
        "twilio_tokens": len(tokens),
        "webhook_endpoints": len(endpoints),
        "hmac_keys": len(keys),
        "calendar_passwords": len(passwords),
    }
