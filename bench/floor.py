"""The HTTP floor for `make bench`: the webhook's transport without the booking.

Served by gunicorn with the production config behind nginx, exactly like the real app, this
app only reads and parses the ~50 KB VAPI body and answers one result per tool call. Its
throughput is what nginx + gunicorn + Flask + JSON cost on this machine before a single SQL
statement: an upper bound for the booking path, to read the ratio to the pgbench ceiling by.
"""

from __future__ import annotations

import json

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/api/health")
def health():
    """What tests/support/stack.py waits for before sending load."""
    return jsonify({"status": "ok"})


@app.post("/api/vapi/tools")
def tools():
    """Parse the body as the webhook does and answer every tool call with a fixed result."""
    if not request.headers.get("Authorization"):
        return jsonify({"error": "Missing or invalid credentials."}), 401
    message = json.loads(request.get_data())["message"]
    calls = message.get("toolCallList") or []
    return jsonify(
        {"results": [{"toolCallId": call.get("id"), "result": "booked"} for call in calls]}
    )
