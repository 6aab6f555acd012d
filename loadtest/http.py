"""A small keep-alive HTTP/1.1 client on asyncio streams, one connection per customer.

The load generator needs a few thousand JSON requests a second from one process, with a
cookie jar and nothing else; a thread per request (urllib) would cost more than the server.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

# uvicorn closes an idle keep-alive connection after 5 s; reconnect before that can race.
IDLE_REUSE_SECONDS = 3.0


class HttpError(Exception):
    """The request got no complete answer (connection refused, reset, timed out). `sent`:
    whether it had been sent, so that the server may have acted on it."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        """The body as a JSON object; {} when it is not one (an HTML error page)."""
        try:
            data: object = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


@dataclass
class Session:
    """One client (a customer or a viewer's log-in): its cookies and one connection."""

    base_url: str
    timeout: float = 30.0
    cookies: dict[str, str] = field(default_factory=dict)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _last_used: float = 0.0
    _sent: bool = False

    def __post_init__(self) -> None:
        self._aim(self.base_url)
        self._lock = asyncio.Lock()

    def _aim(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"Only http:// servers are supported, not {base_url!r}.")
        self.base_url = base_url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.origin = f"http://{parts.netloc}"

    async def move_to(self, base_url: str) -> None:
        """Sends the next requests to another server of the same site, with the same cookies
        (the processes of one site share the database the sessions are kept in)."""
        async with self._lock:
            if base_url != self.base_url:
                await self.close()
                self._aim(base_url)

    @property
    def csrf_token(self) -> str:
        return self.cookies.get("csrftoken", "")

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Sends the request with the session's cookies (and, for unsafe methods, its CSRF
        token) and returns the answer. Raises HttpError when there is none."""
        body = b""
        all_headers = {"Host": f"{self.host}:{self.port}", "Accept": "application/json"}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if method not in ("GET", "HEAD"):
            all_headers["X-CSRFToken"] = self.csrf_token
            all_headers["Referer"] = self.origin + path
            all_headers["Origin"] = self.origin
        if self.cookies:
            all_headers["Cookie"] = self.cookie_header()
        all_headers["Content-Length"] = str(len(body))
        all_headers.update(headers or {})
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in all_headers.items()
        )
        payload = head.encode("latin-1") + b"\r\n" + body
        async with self._lock:
            self._sent = False
            try:
                return await asyncio.wait_for(self._exchange(payload, method), self.timeout)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                await self.close()
                raise HttpError(
                    f"{method} {path}: {type(exc).__name__}: {exc}", sent=self._sent
                ) from exc

    async def _exchange(self, payload: bytes, method: str) -> Response:
        if self._writer is not None and time.monotonic() - self._last_used > IDLE_REUSE_SECONDS:
            await self.close()
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader = self._reader
        self._sent = True
        self._writer.write(payload)
        await self._writer.drain()
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                self._store_cookie(value)
            headers[name] = value
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        else:
            body = await reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        self._last_used = time.monotonic()
        return Response(status, headers, body)

    def _store_cookie(self, header: str) -> None:
        cookie = SimpleCookie()
        try:
            cookie.load(header)
        except Exception:  # a cookie we cannot parse is one we do not need
            return
        for name, morsel in cookie.items():
            if morsel["max-age"] == "0" or not morsel.value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def log_in(session: Session, *, username: str, password: str) -> bool:
    """Logs in through Django's login form, as a browser would. Returns whether it worked
    (Django answers a successful log-in with a redirect and a session cookie)."""
    page = await session.request("GET", "/accounts/login/", headers={"Accept": "text/html"})
    if page.status != 200 or not session.csrf_token:
        return False
    answer = await session.request(
        "POST",
        "/accounts/login/",
        form={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.csrf_token,
        },
        headers={"Accept": "text/html"},
    )
    return answer.status in (302, 303) and "sessionid" in session.cookies


async def sign_up(session: Session, *, username: str, password: str) -> bool:
    """Creates the account through the sign-up form (which also logs it in)."""
    page = await session.request("GET", "/accounts/signup/", headers={"Accept": "text/html"})
    if page.status != 200 or not session.csrf_token:
        return False
    answer = await session.request(
        "POST",
        "/accounts/signup/",
        form={
            "username": username,
            "password1": password,
            "password2": password,
            "csrfmiddlewaretoken": session.csrf_token,
        },
        headers={"Accept": "text/html"},
    )
    return answer.status in (302, 303) and "sessionid" in session.cookies


def next_url(urls: Sequence[str], current: str) -> str:
    """The server to try after `current`: the next of `urls`, in turn (`current` itself when
    it is the only one)."""
    if current not in urls:
        return urls[0] if urls else current
    return urls[(urls.index(current) + 1) % len(urls)]
