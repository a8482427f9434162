"""Socket Mode for FakeSlack: a minimal RFC 6455 server, kept apart so the Web API fake stays readable.

An `xapp-` token gets a ticket from apps.connections.open; GET /link/?ticket=... upgrades to a WebSocket
that says `hello`, carries the envelopes a test pushes and records the client's acks.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import socket
import struct
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

Json = dict[str, Any]
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


def socket_envelope(kind: str, payload: Json, *, retry_attempt: int = 0, envelope_id: str | None = None) -> Json:
    """A Socket Mode envelope shaped as Slack sends it; `retry_attempt` > 0 is Slack redelivering it."""
    envelope: Json = {"envelope_id": envelope_id or str(uuid.uuid4()), "type": kind, "payload": payload}
    responds = kind == "slash_commands" or payload.get("type") in ("view_submission", "block_suggestion")
    envelope["accepts_response_payload"] = responds
    if kind == "events_api":
        envelope.update(retry_attempt=retry_attempt, retry_reason="http_timeout" if retry_attempt else "")
    return envelope


def _ws_accept(key: str) -> str:
    """RFC 6455 4.2.2: the answer that proves to the client we read its handshake."""
    return base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()


def _ws_frame(opcode: int, data: bytes) -> bytes:
    """One final, unmasked frame: servers never mask (RFC 6455 5.1)."""
    size = len(data)
    if size < 126:
        length = bytes([size])
    elif size < 1 << 16:
        length = struct.pack("!BH", 126, size)
    else:
        length = struct.pack("!BQ", 127, size)
    return bytes([0x80 | opcode]) + length + data


def _ws_read(read: Callable[[int], bytes]) -> tuple[int, bytes] | None:
    """One client frame, unmasked; None when the peer went away. Fragments are not needed for acks."""
    head = read(2)
    if len(head) < 2:
        return None
    size = head[1] & 0x7F
    if size >= 126:
        raw = read(2 if size == 126 else 8)
        size = struct.unpack("!H" if size == 126 else "!Q", raw)[0]
    mask = read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = read(size)
    if len(mask) < 4 or len(data) < size:
        return None
    return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class _Link:
    """One live Socket Mode connection; sends are locked because the test thread and the reader both write."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self._lock = sock, threading.Lock()
        self.silent = False

    def send(self, opcode: int, data: bytes) -> None:
        """Write one whole frame so concurrent senders never interleave bytes."""
        with self._lock:
            self.sock.sendall(_ws_frame(opcode, data))

    def drop(self) -> None:
        """Cut the TCP connection so the reader thread ends even if the client never sends close."""
        with contextlib.suppress(OSError):  # already closed by the client
            self.sock.shutdown(socket.SHUT_RDWR)


class SocketMode:
    """FakeSlack's Socket Mode state; shares FakeSlack's lock so acks and API calls stay consistently ordered."""

    def __init__(self, app_id: str, lock: threading.RLock) -> None:
        self.app_id, self._lock = app_id, lock
        self.acks: list[Json] = []  # what the Socket Mode client sent back: {envelope_id, payload?}
        self.connected = threading.Event()  # set while a Socket Mode client is connected (after hello)
        self._acked = threading.Condition(lock)
        self._tickets: set[str] = set()
        self._links: list[_Link] = []

    def new_ticket(self) -> str:
        """A one-use ticket for the ws:// URL apps.connections.open hands out."""
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return ticket

    def go_silent(self) -> None:
        """The newest connection turns half-open (no close frame, no pongs, no acks seen), as after a network drop."""
        with self._lock:
            if self._links:
                self._links[-1].silent = True

    def drop_all(self) -> None:
        """Cut every live connection so FakeSlack.stop() never waits on a reader thread."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.drop()

    def send(self, envelope: Json) -> None:
        """Push one message (an envelope, or e.g. a `disconnect`) down the newest live Socket Mode connection."""
        with self._lock:
            if not self._links:
                raise RuntimeError("no Socket Mode client is connected; wait on socket_connected first")
            link = self._links[-1]
        link.send(_TEXT, json.dumps(envelope).encode())

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> Json:
        """The client's ack for one envelope; Slack redelivers what is not acked within 3 seconds."""
        with self._acked:
            found = self._acked.wait_for(lambda: [a for a in self.acks if a.get("envelope_id") == envelope_id], timeout)
            if not found:
                raise TimeoutError(f"no ack for envelope {envelope_id} within {timeout}s")
            return copy.deepcopy(found[0])

    def serve(self, handler: BaseHTTPRequestHandler, ticket: str) -> None:
        """One Socket Mode connection, in its request thread: upgrade, say hello, then serve until it closes."""
        if not self._upgrade(handler, ticket):
            return
        link = _Link(handler.connection)
        with self._lock:
            self._links.append(link)
        try:
            link.send(_TEXT, json.dumps(self._hello()).encode())
            self.connected.set()
            self._read_frames(handler.rfile.read, link)
        except OSError:
            pass  # the client or stop() cut the connection
        finally:
            with self._lock:
                self._links.remove(link)
                if not self._links:
                    self.connected.clear()

    def _upgrade(self, handler: BaseHTTPRequestHandler, ticket: str) -> bool:
        """RFC 6455 handshake for a ticket from apps.connections.open; a ticket opens one connection."""
        headers, key = handler.headers, handler.headers.get("Sec-WebSocket-Key", "")
        websocket = headers.get("Upgrade", "").lower() == "websocket" and headers.get("Sec-WebSocket-Version") == "13"
        with self._lock:
            known = ticket in self._tickets
            self._tickets.discard(ticket)
        if not (known and websocket and key):
            handler.send_error(400 if known else 401)
            return False
        handler.send_response(101, "Switching Protocols")
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", _ws_accept(key))
        handler.end_headers()
        handler.close_connection = True
        return True

    def _read_frames(self, read: Callable[[int], bytes], link: _Link) -> None:
        """Answer pings, record acks, echo a close; anything else a Socket Mode client sends is ignored."""
        while (frame := _ws_read(read)) is not None:
            opcode, data = frame
            if link.silent:  # a half-open connection: the bytes go nowhere, nothing comes back
                continue
            if opcode == _PING:
                link.send(_PONG, data)
            elif opcode == _TEXT:
                with self._acked:
                    self.acks.append(json.loads(data))
                    self._acked.notify_all()
            elif opcode == _CLOSE:
                link.send(_CLOSE, data[:2])
                return

    def _hello(self) -> Json:
        """The first message on every Socket Mode connection."""
        with self._lock:
            count = len(self._links)
        return {
            "type": "hello", "num_connections": count, "connection_info": {"app_id": self.app_id},
            "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
        }  # fmt: skip
