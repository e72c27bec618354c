"""The server's door, shared by the HTTP side (serve.py's middleware) and the pages: who a browser is, who signed in.

A student is a browser, not a websocket session: the middleware gives every browser a random id in an HttpOnly
cookie on its first page load, the websocket brings it back, and a reload or a second tab is the same student.
Sign-ins are kept per browser id here, in the process, so the middleware can serve downloads (/media) only to
signed-in browsers, and it drops Streamlit's clear_cache messages from every websocket. Nothing here runs inside
a script: the middleware sits in front of Streamlit's own routes.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from http.cookies import SimpleCookie

COOKIE = "classroom_browser"
BROWSER_ID = re.compile(r"^[0-9a-f]{32}$")
SIGN_IN_TTL = 12 * 3600  # seconds a browser stays signed in without a visit: a school day, not forever
GUARDED = ("/media/", "/_stcore/metrics")  # downloads and images; the server's metrics


def new_browser_id() -> str:
    return secrets.token_hex(16)


def valid_browser_id(value: str | None) -> bool:
    return isinstance(value, str) and BROWSER_ID.match(value) is not None


def token_set() -> bool:
    return bool(os.environ.get("CLASSROOM_TOKEN"))


class SignIns:
    """Which browsers gave a token, and as which role; forgotten after SIGN_IN_TTL without a visit."""

    def __init__(self):
        self._lock = threading.Lock()
        self._roles: dict[str, tuple[str, float]] = {}

    def grant(self, browser: str, role: str) -> None:
        if valid_browser_id(browser):
            with self._lock:
                self._roles[browser] = (role, time.monotonic())

    def role(self, browser: str | None) -> str | None:
        """The browser's role, refreshing its visit time; None when it has not signed in (or long ago)."""
        with self._lock:
            found = self._roles.get(browser or "")
            if found is None:
                return None
            if time.monotonic() - found[1] > SIGN_IN_TTL:
                del self._roles[browser]
                return None
            self._roles[browser] = (found[0], time.monotonic())
            return found[0]

    def clear(self) -> None:
        with self._lock:
            self._roles.clear()


class Bucket:
    """A token bucket: `burst` tries at once, then one every `every` seconds."""

    def __init__(self, burst: int, every: float, now: float | None = None):
        self.burst, self.every = burst, every
        self.level, self.stamp = float(burst), time.monotonic() if now is None else now

    def take(self, now: float) -> bool:
        self.level = min(self.burst, self.level + (now - self.stamp) / self.every)
        self.stamp = now
        if self.level < 1:
            return False
        self.level -= 1
        return True

    def wait(self) -> float:
        """Seconds until the next try would be allowed."""
        return max(0.0, (1 - self.level) * self.every)


class SignInLimiter:
    """Limits token tries per client address and for the whole server, so many sessions cannot guess faster.

    A try takes a token from its address's bucket and from the server's before the token is compared, and a
    right token gives them back: only wrong tries count, and a try over the limit is refused unread, whatever it
    says. Signed-in browsers never pass through here, so pages stay fast under attack.
    """

    def __init__(self, per_address: tuple[int, float], whole_server: tuple[int, float], clock=time.monotonic):
        self.per_address, self.clock = per_address, clock
        self._lock = threading.Lock()
        self._server = Bucket(*whole_server, clock())
        self._addresses: dict[str, Bucket] = {}

    def take(self, address: str | None) -> float:
        """0 when this try may be checked (and is counted), else the seconds to wait before trying again."""
        now = self.clock()
        with self._lock:
            if len(self._addresses) > 10_000:  # forget addresses whose buckets have filled up again
                self._addresses = {a: b for a, b in self._addresses.items() if b.level + (now - b.stamp) / b.every < b.burst}
            bucket = self._addresses.setdefault(address or "local", Bucket(*self.per_address, now))
            if not bucket.take(now):
                return bucket.wait()
            if not self._server.take(now):
                bucket.level += 1  # not this address's fault: give its try back
                return self._server.wait()
            return 0.0

    def refund(self, address: str | None) -> None:
        """A right token: the try it took does not count."""
        with self._lock:
            self._server.level = min(self._server.burst, self._server.level + 1)
            if bucket := self._addresses.get(address or "local"):
                bucket.level = min(bucket.burst, bucket.level + 1)


# The process-wide door: created once per server process, beyond the reach of any client's clear_cache.
sign_ins = SignIns()
limiter = SignInLimiter(per_address=(5, 12.0), whole_server=(30, 2.0))  # wrong tries: 5 a minute per address, 30 in all


class Guard:
    """ASGI middleware: gives each browser its id cookie; serves downloads and metrics only to signed-in browsers."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            return await self.app(scope, _without_clear_cache(receive), send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        browser = _cookie(scope)
        path = scope.get("path", "")
        if token_set() and any(part in path for part in GUARDED):
            role = sign_ins.role(browser)
            if role is None or (path.endswith("/_stcore/metrics") and role != "instructor"):
                return await _forbidden(send)
        if valid_browser_id(browser):
            return await self.app(scope, receive, send)
        cookie = f"{COOKIE}={new_browser_id()}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000".encode()

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), (b"set-cookie", cookie)])
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


def _without_clear_cache(receive):
    """The websocket's messages less Streamlit's clear_cache: a client may not empty the caches every session shares
    (process-wide state lives outside them anyway, in ui.state; this keeps the lessons' outputs from being recomputed
    on any client's whim)."""

    async def receive_allowed():
        while True:
            message = await receive()
            if message.get("type") != "websocket.receive" or not _is_clear_cache(message.get("bytes")):
                return message

    return receive_allowed


def _is_clear_cache(data: bytes | None) -> bool:
    from streamlit.proto.BackMsg_pb2 import BackMsg

    if not data:
        return False
    msg = BackMsg()
    try:
        msg.ParseFromString(data)
    except Exception:  # not a BackMsg: Streamlit's own handler will refuse it
        return False
    return msg.WhichOneof("type") == "clear_cache"


def _cookie(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is no id at all
                return None
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


async def _forbidden(send) -> None:
    body = b"Sign in to the classroom first.\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
