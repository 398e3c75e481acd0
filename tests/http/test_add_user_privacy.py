"""Adding a user must not be a way for one organization to learn who signs in to another (#24).

Emails are unique across organizations (sign-in needs nothing but email and password), so an
email in use anywhere cannot be added: the answer is the same whether the user is in this
organization or another, and an organization gets a bounded number of such answers per day."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest

from booking_service.domain.times import utc_now
from booking_service.use_cases.accounts import TAKEN_ANSWERS_PER_DAY, add_user
from tests.support.helpers import count
from tests.support.web import page_token, sign_in_as

PASSWORD = "correct horse battery"


@pytest.fixture
def signed_in(app, runtime, org):
    add_user(runtime.uow(), org.id, "owner@bright.example", "owner", PASSWORD)
    client = app.test_client()
    assert sign_in_as(client, "owner@bright.example", PASSWORD).status_code == 302
    return client


def add_from_page(client, email: str):
    token = page_token(client, "/app/settings")
    response = client.post(
        "/app/settings/users", data={"csrf_token": token, "email": email, "role": "staff"}
    )
    page = response.get_data(as_text=True)
    found = re.search(r'id="form-error">([^<]*)<', page)
    return response.status_code, html.unescape(found.group(1)) if found else None


def test_taken_here_and_taken_elsewhere_get_the_same_answer_from_the_page_and_the_cli(
    app, runtime, org, make_org, signed_in
):
    other = make_org(name="Other Clinic")
    add_user(runtime.uow(), other.id, "theirs@other.example", "owner", PASSWORD)

    ours = add_from_page(signed_in, "owner@bright.example")
    theirs = add_from_page(signed_in, "theirs@other.example")
    assert ours == theirs
    assert ours[0] == 400 and "in this organization or another" in ours[1]

    cli = app.test_cli_runner()
    here = cli.invoke(args=["user", "add", str(org.id), "--email", "owner@bright.example"])
    there = cli.invoke(args=["user", "add", str(org.id), "--email", "theirs@other.example"])
    assert here.exit_code == there.exit_code == 1
    assert here.output == there.output


def test_the_page_pauses_adding_users_after_a_days_share_of_taken_answers(
    app, runtime, org, make_org, signed_in, db
):
    """Without the cap, the page answers "taken" for every address tried: a list of addresses
    would tell which of them sign in to some other organization."""
    other = make_org(name="Other Clinic")
    for n in range(TAKEN_ANSWERS_PER_DAY):
        add_user(runtime.uow(), other.id, f"person{n}@other.example", "staff", PASSWORD)
        status, error = add_from_page(signed_in, f"person{n}@other.example")
        assert status == 400 and "already exists" in error

    # Past the share, a taken address and a free one get the same pause: no more answers.
    add_user(runtime.uow(), other.id, "one.more@other.example", "staff", PASSWORD)
    taken = add_from_page(signed_in, "one.more@other.example")
    free = add_from_page(signed_in, "nobody.yet@bright.example")
    assert taken == free
    assert taken[0] == 400 and "resumes tomorrow" in taken[1]
    assert count(db, "SELECT count(*) FROM users WHERE org_id = %s", org.id) == 1

    # Other organizations are not paused by it, and the operator's CLI is not paused.
    assert count(db, "SELECT count(*) FROM org_counters WHERE org_id <> %s", org.id) == 0
    cli = app.test_cli_runner().invoke(
        args=["user", "add", str(org.id), "--email", "nobody.yet@bright.example"]
    )
    assert cli.exit_code == 0 and json.loads(cli.output)["email"] == "nobody.yet@bright.example"


def test_the_share_starts_again_the_next_day(runtime, org, make_org):
    other = make_org(name="Other Clinic")
    add_user(runtime.uow(), other.id, "theirs@other.example", "owner", PASSWORD)
    today = utc_now()
    for _ in range(TAKEN_ANSWERS_PER_DAY):
        with pytest.raises(ValueError, match="already exists"):
            add_user(
                runtime.uow(), org.id, "theirs@other.example", "staff", limit_taken=True, now=today
            )
    with pytest.raises(ValueError, match="resumes tomorrow"):
        add_user(runtime.uow(), org.id, "free@bright.example", "staff", limit_taken=True, now=today)
    tomorrow = today + timedelta(days=1)
    made = add_user(
        runtime.uow(), org.id, "free@bright.example", "staff", limit_taken=True, now=tomorrow
    )
    assert made.account.email == "free@bright.example"
