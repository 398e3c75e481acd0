"""The owner's web pages through the Flask test client: signing in and reading a page's CSRF
token (the HTTP tests of the pages share them)."""

from __future__ import annotations

import re

from flask.testing import FlaskClient


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def sign_in_as(client: FlaskClient, email: str, password: str, next_page: str = ""):
    page = client.get("/app/login")
    return client.post(
        "/app/login",
        data={
            "email": email,
            "password": password,
            "next": next_page,
            "csrf_token": csrf_token(page.get_data(as_text=True)),
        },
    )


def page_token(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return csrf_token(response.get_data(as_text=True))
