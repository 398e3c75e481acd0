"""Input errors carry data; each front end words them (#25 item 4): the CLI names its flag, the
owner's page names and marks its form field. No use case's message names a CLI flag."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from booking_service.domain.errors import InputError
from booking_service.use_cases.accounts import add_user
from booking_service.use_cases.messaging import MessagingInputError, parse_reminders
from tests.support.web import csrf_token, sign_in_as

USE_CASES = Path(__file__).resolve().parents[2] / "booking_service" / "use_cases"


def test_no_use_case_words_an_input_error_for_one_front_end():
    flag_named = []
    for path in USE_CASES.glob("*.py"):
        for match in re.finditer(r"InputError\(\s*f?[\"']([^\"']*)", path.read_text()):
            if "--" in match.group(1):
                flag_named.append(f"{path.name}: {match.group(1)}")
    assert flag_named == []


def test_the_error_is_data():
    with pytest.raises(MessagingInputError) as raised:
        parse_reminders("24h,soon")
    error = raised.value
    assert isinstance(error, InputError)
    assert error.field == "reminders"
    assert error.problem == "has a bad offset 'soon' (use e.g. 24h,2h or 2d,30m)"


SID = "AC" + "1" * 32
SMS = ["org", "sms", "{org}", "--auth-token", "t"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["org", "update", "{org}", "--slot-minutes", "1"], "--slot-minutes must be between 5"),
        (["org", "update", "{org}", "--reminders", "soon"], "--reminders has a bad offset 'soon'"),
        (
            [*SMS, "--account-sid", "AC1", "--from", "+14155550100"],
            "--account-sid must be a Twilio",
        ),
        ([*SMS, "--account-sid", SID, "--from", "415"], "--from must be a phone number in + form"),
        (["org", "email", "{org}", "--from", "nobody"], '--from must be an address, e.g. "Clinic'),
    ],
)
def test_the_cli_names_the_flag(app, org, args, said):
    result = app.test_cli_runner().invoke(args=[a.format(org=org.id) for a in args])
    assert result.exit_code == 1
    assert said in json.loads(result.output)["error"]


def test_the_settings_page_names_and_marks_the_field(app, runtime, org):
    add_user(runtime.uow(), org.id, "owner@bright.example", "owner", "correct horse battery")
    client = app.test_client()
    assert sign_in_as(client, "owner@bright.example", "correct horse battery").status_code == 302
    token = csrf_token(client.get("/app/settings").get_data(as_text=True))
    page = client.post("/app/settings/rules", data={"csrf_token": token, "slot_minutes": "1"})
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "Start times every (minutes) must be between 5 and 240" in html
    assert re.search(r'name="slot_minutes" aria-invalid="true" aria-describedby="form-error"', html)
    assert html.count('aria-invalid="true"') == 1
    assert "--slot-minutes" not in html
