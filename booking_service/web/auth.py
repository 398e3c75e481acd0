"""Sign-in, sign-out, and who is signed in: the session cookie holds the user id and the
password's epoch (a reset ends every session), nothing else of theirs."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from flask import abort, current_app, g, redirect, render_template, request, session, url_for

from booking_service.domain.times import utc_now
from booking_service.runtime.extensions import runtime
from booking_service.use_cases.accounts import (
    Account,
    SignInBusy,
    SignInFailed,
    SignInLocked,
    sign_in,
    sign_in_source,
    sign_out,
    signed_in,
)
from booking_service.use_cases.orgs import get_org
from booking_service.web.blueprint import SESSION_HOURS, bp, csrf


def uow():
    """A unit of work whose changes are recorded as made on the web page."""
    return runtime().uow(source="web")


@bp.before_request
def load_account() -> None:
    """Refuse when nothing can be signed, check the CSRF token of every POST, and load the
    signed-in account and its organization into `g`."""
    if request.endpoint == "web.static":
        return  # the stylesheet is the same for everybody: no session, no query
    if not current_app.config.get("SECRET_KEY"):
        abort(503)
    if request.method == "POST":
        csrf.protect()
        # PostgreSQL text cannot hold NUL; nobody types one. Other control characters pasted
        # from documents are cleaned by the use cases (names, notes) like a caller's text.
        if any("\x00" in value for value in request.form.values()):
            abort(400)
    g.account = None
    g.org = None
    user_id, epoch, since = session.get("uid"), session.get("epoch"), session.get("at")
    if isinstance(user_id, int) and isinstance(epoch, int) and isinstance(since, int):
        # However active, a session ends SESSION_HOURS after signing in.
        fresh = 0 <= time.time() - since < SESSION_HOURS * 3600
        account = signed_in(uow(), user_id, epoch) if fresh else None
        if account is None:
            session.clear()  # removed, or the password was reset: sign in again
        else:
            g.account = account
            g.org = get_org(uow(), account.org_id)


def signed_in_only(view: Callable) -> Callable:
    """Pages for any signed-in user; others are sent to sign in and brought back after."""

    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if g.account is None:
            return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return guarded


def owners_only(view: Callable) -> Callable:
    """Pages that change the organization's settings: owners only (staff get 403)."""

    @functools.wraps(view)
    def owner_view(*args, **kwargs):
        if not g.account.is_owner:
            abort(403)
        return view(*args, **kwargs)

    return signed_in_only(owner_view)


# What a path of these pages may hold: unreserved and reserved URL characters and %-escapes.
# Anything else (a space, CR/LF or another control character, non-ASCII) is refused rather
# than repaired: a Location header cannot carry a line break, and nobody types one.
_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~/?#\[\]@!$&'()*+,;=%:]*")


def _safe_next(target: str | None) -> str:
    """Only a path of these pages: never another site (an open redirect), a scheme, a header
    break or a path that leaves /app/ once resolved; anything else goes to the agenda."""
    if target and _PATH_CHARACTERS.fullmatch(target) and "\\" not in target:
        try:
            parts = urlsplit(target)
        except ValueError:  # e.g. an unbalanced "[" where a host would be
            parts = None
        segments = unquote(parts.path).split("/") if parts else []
        local = (
            parts is not None
            and not parts.scheme
            and not parts.netloc
            and parts.path.startswith("/app/")
            and not target.startswith("//")
            and "." not in segments
            and ".." not in segments
        )
        if local:
            return target
    return url_for("web.agenda")


def _start_session(account: Account) -> None:
    session.clear()  # nothing from before signing in survives (no session fixation)
    session["uid"] = account.id
    session["epoch"] = account.session_epoch
    session["at"] = int(time.time())
    session.permanent = True


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form (fields `email` and `password`)."""
    if request.method == "GET":
        if g.account is not None:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("web/login.html", next=request.args.get("next", ""))
    email = request.form.get("email", "")
    password = request.form.get("password", "")
    next_page = request.form.get("next", "")
    # The client as nginx saw it (TrustedProxies applied X-Forwarded-For only from a trusted
    # proxy): failed guesses lock this email for this address only, not for its owner.
    source = sign_in_source(request.remote_addr)
    try:
        account = sign_in(uow(), email, password, utc_now(), source=source)
    except SignInBusy:
        # Answered at once rather than queued: waiting threads are what the webhook needs.
        message = "The server is busy signing others in. Try again in a moment."
        page = render_template("web/login.html", error=message, email=email, next=next_page)
        return page, 503, {"Retry-After": "1"}
    except SignInLocked as locked:
        minutes = max(1, round((locked.until - utc_now()).total_seconds() / 60))
        message = (
            "Too many failed sign-ins for this email. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )
        return render_template("web/login.html", error=message, email=email, next=next_page), 429
    except SignInFailed:
        message = "Wrong email or password."
        return render_template("web/login.html", error=message, email=email, next=next_page), 401
    _start_session(account)
    return redirect(_safe_next(next_page))


@bp.post("/logout")
def logout():
    """Sign out (a POST with a CSRF token: a link on another site cannot sign anyone out),
    everywhere: the user's other sessions and any copy of this cookie end too."""
    if g.account is not None:
        sign_out(uow(), g.account.id)
    session.clear()
    return redirect(url_for("web.login"))
