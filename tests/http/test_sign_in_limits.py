"""Sign-in limits that keep one client from stalling or locking out others (#24): the lock is
per email *and* source address, an email guessed at from many addresses stops the addresses that
failed (not the owner's), password hashing is bounded per process and the excess is answered
"busy" at once, and a `next` that cannot be a header ends at the agenda, never a 500."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

import booking_service.use_cases.accounts as accounts
from booking_service.domain.times import utc_now
from booking_service.use_cases.accounts import (
    SignInFailed,
    SignInLocked,
    reset_password,
    sign_in,
    sign_in_source,
)
from tests.support.helpers import count
from tests.support.web import csrf_token, sign_in_as

PASSWORD = "correct horse battery"
STRANGER = "198.51.100.7"
OWNER_AT_HOME = "203.0.113.9"


def via_nginx(client, client_address: str) -> None:
    """Requests from now on arrive as nginx forwards them: from loopback (a trusted proxy)
    with the client's address in X-Forwarded-For."""
    client.environ_base.update({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": client_address})


def client_at(app, client_address: str):
    client = app.test_client()
    via_nginx(client, client_address)
    return client


# --- the lock is per email and source ------------------------------------------------------------


def test_a_strangers_guesses_lock_the_stranger_not_the_owner(app, owner):
    stranger = client_at(app, STRANGER)
    for _ in range(9):
        assert sign_in_as(stranger, owner.account.email, "guess guess guess").status_code == 401
    assert sign_in_as(stranger, owner.account.email, "guess guess guess").status_code == 429
    # The stranger stays locked, even with the right password...
    assert sign_in_as(stranger, owner.account.email, PASSWORD).status_code == 429
    # ...and the owner, from their own address, signs in.
    owner_client = client_at(app, OWNER_AT_HOME)
    signed = sign_in_as(owner_client, owner.account.email, PASSWORD)
    assert signed.status_code == 302 and signed.headers["Location"] == "/app/agenda"


def test_a_forwarded_for_header_from_an_untrusted_peer_does_not_escape_the_lock(app, owner):
    """Only nginx may say who the client is: a stranger reaching gunicorn directly cannot
    claim a new address per guess."""
    stranger = app.test_client()
    for n in range(10):
        stranger.environ_base.update(
            {"REMOTE_ADDR": STRANGER, "HTTP_X_FORWARDED_FOR": f"192.0.2.{n + 1}"}
        )
        sign_in_as(stranger, owner.account.email, "guess guess guess")
    stranger.environ_base["HTTP_X_FORWARDED_FOR"] = "192.0.2.200"
    assert sign_in_as(stranger, owner.account.email, PASSWORD).status_code == 429


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::99", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("", ""),
        (None, ""),
        ("not an address", ""),
    ],
)
def test_a_source_is_an_ipv4_address_or_an_ipv6_64(address, key):
    """One IPv6 subscriber holds a whole /64: counted per address it would be endless fresh
    counters for one attacker."""
    assert sign_in_source(address) == key


def test_a_correct_password_clears_only_its_own_sources_count(runtime, owner, db):
    now = utc_now()
    for source in ("192.0.2.1", "192.0.2.2"):
        for _ in range(3):
            with pytest.raises(SignInFailed):
                sign_in(runtime.uow(), owner.account.email, "wrong wrong wrong", now, source=source)
    sign_in(runtime.uow(), owner.account.email, PASSWORD, now, source="192.0.2.2")
    left = db.execute(
        "SELECT source, cardinality(recent_attempts) FROM sign_in_throttles ORDER BY source"
    ).fetchall()
    assert left == [("192.0.2.1", 3)]


def test_parallel_guesses_from_one_source_are_all_counted_in_its_row(runtime, owner, db):
    from tests.support.helpers import run_concurrently

    now = utc_now()

    def attempt(i):
        source = STRANGER if i % 2 else OWNER_AT_HOME
        try:
            sign_in(runtime.uow(), owner.account.email, "wrong wrong wrong", now, source=source)
        except (SignInFailed, SignInLocked, accounts.SignInBusy) as exc:
            return type(exc).__name__
        return "signed in"

    outcomes = run_concurrently(8, attempt)
    assert "signed in" not in outcomes
    rows = db.execute(
        "SELECT source, cardinality(recent_attempts) FROM sign_in_throttles ORDER BY source"
    ).fetchall()
    # Busy answers count nothing; every other attempt is in its own source's row.
    counted = {source: n for source, n in rows}
    assert sum(counted.values()) == len(outcomes) - outcomes.count("SignInBusy")
    assert set(counted) <= {STRANGER, OWNER_AT_HOME}


def test_a_password_reset_lifts_the_locks_of_every_source(runtime, owner, db):
    now = utc_now()
    for source in ("192.0.2.1", "192.0.2.2"):
        for _ in range(10):
            with pytest.raises((SignInFailed, SignInLocked)):
                sign_in(runtime.uow(), owner.account.email, "wrong wrong wrong", now, source=source)
    assert count(db, "SELECT count(*) FROM sign_in_throttles WHERE locked_until > now()") == 2
    made = reset_password(runtime.uow(), owner.account.id, "a brand new password")
    assert count(db, "SELECT count(*) FROM sign_in_throttles") == 0
    for source in ("192.0.2.1", "192.0.2.2"):
        assert sign_in(runtime.uow(), owner.account.email, made.password, now, source=source)


def test_old_counters_of_every_source_are_forgotten(runtime, owner, db):
    then = utc_now() - timedelta(hours=1)
    for source in ("192.0.2.1", "192.0.2.2", ""):
        with pytest.raises(SignInFailed):
            sign_in(runtime.uow(), owner.account.email, "wrong wrong wrong", then, source=source)
    with pytest.raises(SignInFailed):
        sign_in(runtime.uow(), owner.account.email, "wrong wrong wrong", utc_now(), source="x")
    with runtime.uow() as uow:
        assert uow.users.forget_throttles(utc_now() - accounts.FAILURE_WINDOW) == 3
        uow.commit()
    assert [r[0] for r in db.execute("SELECT source FROM sign_in_throttles")] == ["x"]


def test_guessing_from_many_addresses_stops_the_ones_that_failed_not_the_owner(
    runtime, owner, monkeypatch
):
    """Past EMAIL_FAILURE_LIMIT attempts on one email (all sources), an address that has failed
    already gets no more comparisons this window; an address that has not is still compared."""
    monkeypatch.setattr(accounts, "EMAIL_FAILURE_LIMIT", 5)
    now = utc_now()
    for n in range(6):
        with pytest.raises(SignInFailed):
            sign_in(
                runtime.uow(), owner.account.email, "wrong wrong wrong", now, source=f"192.0.2.{n}"
            )
    compared = []
    real = accounts.check_password_hash
    monkeypatch.setattr(accounts, "check_password_hash", lambda *a: compared.append(1) or real(*a))
    with pytest.raises(SignInLocked):  # even the right password: it is not compared
        sign_in(runtime.uow(), owner.account.email, PASSWORD, now, source="192.0.2.0")
    assert compared == []
    assert sign_in(runtime.uow(), owner.account.email, PASSWORD, now, source=OWNER_AT_HOME)
    # A window later the failed address is compared again.
    later = now + accounts.FAILURE_WINDOW + timedelta(seconds=1)
    assert sign_in(runtime.uow(), owner.account.email, PASSWORD, later, source="192.0.2.0")


# --- hashing is bounded per process -------------------------------------------------------------


def test_concurrent_sign_ins_never_hash_more_than_the_slots_and_the_rest_are_told_busy(
    app, owner, monkeypatch
):
    """The comparisons are instrumented, not timed: the hashing that got a slot waits until
    every other sign-in has been answered, so an excess that queued would never be answered
    (and the test would fail at the join), and one that hashed would raise the high-water
    mark."""
    clients = 6
    slots = accounts.HASHING_SLOTS
    answered = threading.Semaphore(0)
    release = threading.Event()
    lock = threading.Lock()
    hashing = [0]
    most = [0]
    real = accounts.check_password_hash

    def instrumented(stored: str, candidate: str) -> bool:
        with lock:
            hashing[0] += 1
            most[0] = max(most[0], hashing[0])
        try:
            release.wait(timeout=60)  # a guard against a hang, not a measurement
            return real(stored, candidate)
        finally:
            with lock:
                hashing[0] -= 1

    monkeypatch.setattr(accounts, "check_password_hash", instrumented)
    forms = []
    for n in range(clients):
        client = client_at(app, f"192.0.2.{n + 1}")
        forms.append((client, csrf_token(client.get("/app/login").get_data(as_text=True))))
    statuses: list = [None] * clients
    pages: list = [None] * clients
    barrier = threading.Barrier(clients)

    def post(i: int) -> None:
        client, token = forms[i]
        barrier.wait()
        response = client.post(
            "/app/login",
            data={"email": owner.account.email, "password": PASSWORD, "csrf_token": token},
        )
        statuses[i], pages[i] = response.status_code, response
        answered.release()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for _ in range(clients - slots):  # every sign-in without a slot is answered meanwhile
        assert answered.acquire(timeout=60), "a sign-in without a slot was not answered at once"
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    assert most[0] == slots
    assert statuses.count(302) == slots
    assert statuses.count(503) == clients - slots
    busy = next(page for page in pages if page.status_code == 503)
    assert busy.headers["Retry-After"] == "1"
    assert "busy" in busy.get_data(as_text=True) and "Traceback" not in busy.get_data(as_text=True)


# --- next ------------------------------------------------------------------------------------


UNSAFE_NEXT = [
    "/app/agenda\r\nSet-Cookie: x=1",
    "/app/agenda\nX: y",
    "/app/agenda\r",
    "/app/\x00",
    "/app/\x1b[31m",
    "/app/\x7f",
    "/app/agenda\t",
    "/app/agenda x",
    "/app/ä",
    "/app/../api/vapi/tools",
    "/app/%2e%2e/api/vapi/tools",
    "/app/./agenda",
    "//[evil",
    "/app/\u2028",
]


@pytest.mark.parametrize("target", UNSAFE_NEXT)
def test_an_unsafe_next_after_signing_in_goes_to_the_agenda(app, owner, target):
    response = sign_in_as(app.test_client(), owner.account.email, PASSWORD, target)
    if "\x00" in target:  # every form with a NUL is refused first (load_account): no 500
        assert response.status_code == 400
        return
    assert response.status_code == 302 and response.headers["Location"] == "/app/agenda"


@pytest.mark.parametrize("target", UNSAFE_NEXT)
def test_an_unsafe_next_when_already_signed_in_goes_to_the_agenda(app, owner, target):
    client = app.test_client()
    assert sign_in_as(client, owner.account.email, PASSWORD).status_code == 302
    response = client.get("/app/login", query_string={"next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/app/agenda"


def test_a_safe_next_is_still_followed(app, owner):
    target = "/app/agenda?view=week&date=2030-01-02#top"
    response = sign_in_as(app.test_client(), owner.account.email, PASSWORD, target)
    assert response.headers["Location"] == target


# --- the session cookie --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proto", "host", "secure"),
    [
        ("http", "127.0.0.1:8000", False),  # make run
        ("http", "localhost:8000", False),
        ("http", "[::1]:8000", False),
        ("http", "diary.example", True),  # production reached in clear: never a clear cookie
        ("http", "192.168.1.20:8000", True),
        ("https", "diary.example", True),
        ("https", "127.0.0.1", True),
    ],
)
def test_the_session_cookie_is_secure_except_over_plain_http_to_loopback(
    app, owner, proto, host, secure
):
    """Whatever PUBLIC_URL says (here its default, http://127.0.0.1:8000): the request
    decides. The test client, like a browser, returns a Secure cookie over https only."""
    client = app.test_client()
    base = f"{proto}://{host}"
    page = client.get("/app/login", base_url=base).get_data(as_text=True)
    response = client.post(
        "/app/login",
        base_url=base,
        headers={"Referer": f"{base}/app/login"},  # Flask-WTF checks it over https
        data={"email": owner.account.email, "password": PASSWORD, "csrf_token": csrf_token(page)},
    )
    assert ("Secure" in response.headers["Set-Cookie"]) is secure


def test_behind_nginx_the_forwarded_scheme_and_host_decide(app, owner):
    """gunicorn sees nginx on loopback over http: the client's scheme and host come from
    X-Forwarded-Proto/-Host, so the cookie of a production page is Secure."""
    client = app.test_client()
    client.environ_base.update(
        {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "diary.example"}
    )
    page = client.get("/app/login")
    assert "Secure" in page.headers["Set-Cookie"]
