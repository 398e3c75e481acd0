"""A TCP relay that counts the round trips clients make to PostgreSQL (or to PgBouncer).

`make profile` and the tests of deferred statements put it between the app and the database.
A round trip is a point where the client stops and waits for the server: in the PostgreSQL
protocol, a simple Query ('Q') or a Sync ('S') that ends a batch of extended-protocol
messages; anything the client sends between two of them (Parse, Bind, Execute of several
statements: a pipeline) travels in the same trip. Counting those messages, rather than
timing anything, gives the same figure on a busy machine as on a quiet one.

It runs in a child process, so that its own CPU is not counted as the app's.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import struct
import threading
from collections.abc import Iterator
from multiprocessing.sharedctypes import Synchronized

from booking_service.devtools import pgcluster

SSL_REQUEST = 80877103
GSS_REQUEST = 80877104


def _count_client(data: bytearray, state: dict, counter: Synchronized) -> None:
    """Consume whole frontend messages from `data`, counting Query and Sync."""
    while True:
        if not state["started"]:
            if len(data) < 8:
                return
            (length,) = struct.unpack("!i", data[:4])
            if len(data) < length:
                return
            (code,) = struct.unpack("!i", data[4:8])
            del data[:length]
            # SSLRequest and GSSENCRequest are answered with one byte; the startup
            # message (also untyped) follows them.
            if code not in (SSL_REQUEST, GSS_REQUEST):
                state["started"] = True
            continue
        if len(data) < 5:
            return
        kind = data[0:1]
        (length,) = struct.unpack("!i", data[1:5])
        if len(data) < length + 1:
            return
        del data[: length + 1]
        if kind in (b"Q", b"S"):
            with counter.get_lock():
                counter.value += 1


def _pipe(source: socket.socket, target: socket.socket, counter: Synchronized | None) -> None:
    data = bytearray()
    state = {"started": False}
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
            if counter is not None:
                data += chunk
                _count_client(data, state, counter)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, port: int, counter: Synchronized) -> None:
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", port))
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pipe, args=(client, server, counter), daemon=True).start()
        threading.Thread(target=_pipe, args=(server, client, None), daemon=True).start()


def _run(listen_port: int, port: int, counter: Synchronized, ready) -> None:
    listener = socket.create_server(("127.0.0.1", listen_port))
    ready.set()
    _serve(listener, port, counter)


@contextlib.contextmanager
def counting_relay(port: int) -> Iterator[tuple[int, Synchronized]]:
    """Relay 127.0.0.1:<new port> to 127.0.0.1:`port` in a child process; yields the new
    port and the shared count of round trips (Query and Sync messages) clients made."""
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    ready = context.Event()
    listen_port = pgcluster.free_port()
    child = context.Process(target=_run, args=(listen_port, port, counter, ready), daemon=True)
    child.start()
    try:
        if not ready.wait(10):
            raise RuntimeError("the counting relay did not start")
        yield listen_port, counter
    finally:
        child.terminate()
        child.join(5)
