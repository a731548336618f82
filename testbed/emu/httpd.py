"""A deliberately small HTTP/1.1 control endpoint on asyncio streams, and a blocking client for the controller.

The agents' and the injector's control API needs four verbs on a handful of paths, one request per connection;
pulling in a web framework for that would add a dependency to every agent image. Requests larger than
`MAX_REQUEST_BYTES` or malformed are answered 400 and the connection closed; a handler exception becomes a 500 and
never takes the process down.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

MAX_REQUEST_BYTES = 8 << 20  # a /start body carries the offer times of the node's flows
Handler = Callable[[str, str, dict, bytes], Awaitable[tuple[int, str, bytes]]]
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            500: "Internal Server Error"}


def json_response(obj, status: int = 200) -> tuple[int, str, bytes]:
    return status, "application/json", (json.dumps(obj) + "\n").encode()


def text_response(text: str, status: int = 200) -> tuple[int, str, bytes]:
    return status, "text/plain; version=0.0.4", text.encode()


async def serve(handler: Handler, hosts: list[str], port: int) -> asyncio.AbstractServer:
    """Listen on `hosts`:`port`; `handler(method, path, query, body)` returns (status, content type, body)."""

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, ctype, body = await _one(reader, handler)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
            status, ctype, body = 400, "text/plain", b"bad request\n"
        try:
            head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(on_conn, host=hosts, port=port, reuse_address=True, limit=1 << 16)


async def _one(reader: asyncio.StreamReader, handler: Handler) -> tuple[int, str, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    if length < 0 or length > MAX_REQUEST_BYTES:
        return 400, "text/plain", b"request too large\n"
    body = await asyncio.wait_for(reader.readexactly(length), 30) if length else b""
    url = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    try:
        return await handler(method, url.path, query, body)
    except Exception as e:  # the endpoint must survive any request
        return 500, "text/plain", f"{type(e).__name__}: {e}\n".encode()


# -- client (the controller side) ------------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # control traffic never goes via a proxy


def request(url: str, method: str = "GET", obj=None, timeout_s: float = 5.0) -> bytes:
    """One HTTP request; raises OSError (incl. urllib errors) when the endpoint is down or answers non-2xx."""
    data = json.dumps(obj).encode() if obj is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with _OPENER.open(req, timeout=timeout_s) as resp:
        return resp.read()


def get_json(url: str, timeout_s: float = 5.0):
    return json.loads(request(url, timeout_s=timeout_s))


def try_json(url: str, timeout_s: float = 1.0):
    """GET and parse, or None when the endpoint is unreachable."""
    try:
        return get_json(url, timeout_s)
    except (OSError, ValueError, urllib.error.URLError):
        return None
