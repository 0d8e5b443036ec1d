"""Hardened JSON over HTTP: the serving pieces every server of this project shares.

    class Handler(JSONHandler):
        def get(self, path):  return 200, {"status": "ok"}
        def post(self, path): return 200, {"echo": self.read_json()}
    httpd = JSONHTTPServer(("127.0.0.1", 0), Handler, max_workers=256, backlog=1024, max_body=2**20)
    httpd.serve_forever()

What it holds, and why (the stdlib defaults failed each of these; docs/scale-out.md):
- a listen backlog of `backlog` connections and at most `max_workers` connections served
  at once, one thread each; a connection beyond that waits in the backlog, it is not
  dropped (with the stdlib's backlog of 5, 5-32% of a burst of 200 plain clients were
  reset in one test, 245 of 1,000 waited past 30 s in bench/server_burst.py);
- a connection idle for `timeout_s` (keep-alive, or a body that never arrives) is closed,
  so idle clients cannot hold every worker;
- a body needs a Content-Length and at most `max_body` bytes (411 / 413);
- `parse_json`: bad UTF-8, bad JSON, nesting deeper than the parser's recursion limit and
  integers over Python's 4,300-digit conversion limit are all a 400 with one line saying
  why (the last two used to close the connection with no reply);
- every error, the stdlib's own too (a garbled request line, an unknown method), and any
  exception a handler raises are answered as JSON {"error": "..."} (a subclass reshapes it
  with `error_body`, e.g. OpenAI's {"error": {"message", "type", ...}}); the server keeps
  serving. A handler may answer with `RawBody` (bytes and a content type) instead of JSON.

Standard library only, so importing it is cheap.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

DEFAULT_BACKLOG = 1024  # the kernel caps it at net.core.somaxconn (4096 on current Linux)
DEFAULT_WORKERS = 256
DEFAULT_TIMEOUT_S = 60.0


class BadRequest(ValueError):
    """A request refused with a 4xx (400 unless `status` says otherwise); the message
    says what is wrong and how to fix it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_json(body: bytes):
    """The JSON value of a request body, or BadRequest naming what is wrong with it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"request body is not UTF-8 text (bad byte at position {e.start}); send JSON "
                         "encoded as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadRequest(f"request body is not valid JSON ({e.msg} at position {e.pos})") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply to parse; send a flat JSON object") from None
    except ValueError:  # int('9' * 5000): over sys.get_int_max_str_digits()
        raise BadRequest(f"request body holds a number of more than {sys.get_int_max_str_digits()} digits; "
                         "send such numbers as strings") from None


@dataclass(frozen=True)
class RawBody:
    """A reply that is not JSON (e.g. a text/event-stream), sent as is with a Content-Length."""

    data: bytes
    content_type: str


class JSONHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with a deep listen backlog and a bounded number of workers.

    Args:
        address, handler: as `ThreadingHTTPServer` (handler: a `JSONHandler` subclass).
        max_workers: connections served at once (one thread each); more wait in the backlog.
        backlog: listen backlog (connections the kernel queues before accept).
        max_body: largest request body in bytes (413 above it).
        timeout_s: a connection idle this long, or a body this slow, is closed.
    """

    daemon_threads = True  # a stuck connection never blocks shutdown

    def __init__(self, address, handler, *, max_workers: int = DEFAULT_WORKERS, backlog: int = DEFAULT_BACKLOG,
                 max_body: int = 64 * 2**20, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        for name, v in (("max_workers", max_workers), ("backlog", backlog), ("max_body", max_body)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}.")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}.")
        self.request_queue_size = backlog  # read by server_activate() -> listen()
        self.max_workers, self.max_body, self.timeout_s = max_workers, max_body, timeout_s
        self._slots = threading.BoundedSemaphore(max_workers)
        self._closing = threading.Event()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        # wait for a free worker; meanwhile the kernel queues new connections (the backlog)
        while not self._slots.acquire(timeout=0.5):
            if self._closing.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):  # through logging, not a traceback on stderr
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def shutdown(self):
        self._closing.set()  # an accept loop waiting for a free worker gives up
        super().shutdown()

    def server_close(self):
        self._closing.set()
        super().server_close()


class ServedApp:
    """serve_forever / start on a thread / stop for an app that holds `self.httpd` (a
    JSONHTTPServer); shared by the scorer and search servers. `close_resources` runs
    after the listener is closed and before the serving thread is joined."""

    httpd: JSONHTTPServer
    _thread: threading.Thread | None = None
    thread_name = "json-http-server"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def serve_until_interrupted(self) -> None:
        """Serve in the foreground until Ctrl-C, then close the listener (the command lines)."""
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.httpd.server_close()

    def start(self):
        """Serve on a background thread (tests, embedding in another program)."""
        self._thread = threading.Thread(target=self.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def close_resources(self) -> None:
        """What the app must close beside the listener (nothing by default)."""

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.close_resources()
        if self._thread is not None:
            self._thread.join(timeout=5)


class JSONHandler(BaseHTTPRequestHandler):
    """Request handler base: subclasses define `get(path)` and/or `post(path)`, each
    returning (status, JSON-able object); `self.read_json()` reads the body
    (`read_body()` as bytes). A
    `BadRequest` raised in them is answered with its status, any other exception
    with 500; both as {"error": ...}."""

    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    server: JSONHTTPServer

    def setup(self):
        self.timeout = self.server.timeout_s  # socket timeout of this connection
        super().setup()

    def get(self, path: str):
        raise BadRequest(f"no such path {path!r}", 404)

    def post(self, path: str):
        raise BadRequest(f"no such path {path!r}", 404)

    def do_GET(self):
        self._dispatch(self.get)

    def do_POST(self):
        self._dispatch(self.post)

    def _dispatch(self, fn) -> None:
        try:
            code, obj = fn(self.path)
        except BadRequest as e:
            code, obj = e.status, self.error_body(e.status, str(e), e)
        except Exception as e:
            log.exception("%s %s failed", self.command, self.path)
            code, obj = 500, self.error_body(500, f"internal error: {type(e).__name__}: {e}", e)
        unread = code in (408, 411, 413)  # the body was not read: the connection cannot be reused
        if unread:
            self.close_connection = True
        if isinstance(obj, RawBody):
            self.send_bytes(code, obj.data, obj.content_type)
        else:
            self.send_json(code, obj)
        if unread:
            self._drain()

    def _drain(self, seconds: float = 1.0) -> None:
        """Read and drop what the client still sends, for up to `seconds`: closing a socket
        with unread data resets the connection, and the client may lose the error reply."""
        import socket
        import time

        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.2)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and self.connection.recv(65536):
                pass
        except OSError:
            pass

    def read_json(self):
        """The request body parsed as JSON (see `read_body` and `parse_json`)."""
        return parse_json(self.read_body())

    def read_body(self) -> bytes:
        """The request body (Content-Length required, at most max_body bytes)."""
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            raise BadRequest("chunked request bodies are not supported; send a Content-Length", 411)
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise BadRequest(f"a Content-Length header with the body size in bytes is required, got {length!r}", 411)
        n = int(length)
        if n > self.server.max_body:
            raise BadRequest(f"request body of {n} bytes exceeds the server's limit of {self.server.max_body} bytes; "
                             "split it into smaller requests", 413)
        try:
            body = self.rfile.read(n)
        except TimeoutError:
            raise BadRequest(f"request body not received within {self.server.timeout_s:g}s", 408) from None
        if len(body) < n:
            raise BadRequest(f"request body ended after {len(body)} of {n} bytes (Content-Length)", 400)
        return body

    def error_body(self, code: int, message: str, exc: BaseException | None = None):
        """The JSON object of an error reply (override to reshape it)."""
        return {"error": message}

    def send_json(self, code: int, obj) -> None:
        self.send_bytes(code, json.dumps(obj).encode(), "application/json")

    def send_bytes(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """The stdlib's errors (garbled request line, header too long, unknown method) as JSON."""
        self.close_connection = True
        short = self.responses.get(code, ("error",))[0]
        text = message or short
        if explain:
            text += f": {explain}"
        body = json.dumps(self.error_body(code, text)).encode()
        self.send_response(code, short)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def log_message(self, fmt, *args):  # through logging, not stderr
        log.debug("%s " + fmt, self.address_string(), *args)
