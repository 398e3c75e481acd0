"""Google and Microsoft 365 calendars for the tests: the fakes on loopback
(fake_google.py, fake_microsoft.py), an app registered with both, and the whole connect flow
driven through the CLI (`calendar connect`), the fake consent page and our callback."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx

from tests.support.fake_oauth import CLIENT_ID, CLIENT_SECRET
from tests.support.helpers import cli

PUBLIC = "https://book.example.com"


def oauth_settings(google, microsoft) -> dict:
    return {
        "PUBLIC_BASE_URL": PUBLIC,
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "GOOGLE_AUTH_URL": f"{google.base}{google.auth_path}",
        "GOOGLE_TOKEN_URL": f"{google.base}{google.token_path}",
        "GOOGLE_CALENDAR_API_URL": google.api_url,
        "MICROSOFT_CLIENT_ID": CLIENT_ID,
        "MICROSOFT_CLIENT_SECRET": CLIENT_SECRET,
        "MICROSOFT_AUTHORITY_URL": microsoft.authority_url,
        "MICROSOFT_GRAPH_URL": microsoft.graph_url,
        "CALENDAR_TIMEOUT_S": 3,
    }


def consent(authorize_url: str, *, deny: bool = False) -> str:
    """Open the consent page and press Allow (or Cancel); the path and query the provider sends
    the browser back to (on PUBLIC_BASE_URL)."""
    page = httpx.get(authorize_url)
    assert page.status_code == 200, page.text
    if deny:
        href = page.text.split('id="deny" href="')[1].split('"')[0].replace("&amp;", "&")
        target = href
    else:
        href = page.text.split('id="allow" href="')[1].split('"')[0].replace("&amp;", "&")
        allowed = httpx.get(str(page.url.join(href)), follow_redirects=False)
        assert allowed.status_code == 302, allowed.text
        target = allowed.headers["location"]
    assert target.startswith(PUBLIC + "/oauth/"), target
    parts = urlsplit(target)
    return f"{parts.path}?{parts.query}"


def start(app, resource_id: int, provider: str, *extra: str) -> str:
    out = cli(app, "calendar", "connect", str(resource_id), "--provider", provider, *extra)
    return json.loads(out)["authorize_url"]


def come_back(client, callback: str):
    """The browser arriving at our callback: forwarded to the page that links."""
    first = client.get(callback)
    assert first.status_code == 303, first.get_data(as_text=True)
    return client.get(first.headers["location"])


def connect(app, resource_id: int, provider: str, *extra: str) -> dict:
    """Connect through the whole flow; the link as `calendar list` prints it."""
    callback = consent(start(app, resource_id, provider, *extra))
    done = come_back(app.test_client(), callback)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "connected" in done.get_data(as_text=True)
    org_links = [
        json.loads(line)
        for line in cli(app, "calendar", "list", str(org_of(app, resource_id))).splitlines()
    ]
    return next(
        link
        for link in org_links
        if link["resource_id"] == resource_id and link["provider"] == provider
    )


def org_of(app, resource_id: int) -> int:
    from booking_service.runtime.extensions import KEY

    with app.extensions[KEY].engine.connect() as conn:
        from sqlalchemy import text

        return conn.execute(
            text("SELECT org_id FROM resources WHERE id = :id"), {"id": resource_id}
        ).scalar_one()
