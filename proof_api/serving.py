"""How `evledger serve` meets the network: the TLS files, checked before the service opens, and
the HTTP/1.1 protocol with the limits uvicorn lacks on a request's head (its request line and
headers). docs/api.md, "Limits and timeouts", lists them.

uvicorn (with httptools, the parser it picks when httptools is installed) bounds neither how
long a client may take to send a head nor how big the head may be: llhttp has no header size
or count limit, and uvicorn's keep-alive timeout is cancelled by the first byte a client sends.
A client trickling header bytes would hold its connection (and its memory) for ever.
"""
from __future__ import annotations

import ssl
from collections.abc import Callable

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

HEADER_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 32 * 1024  # request line and headers together, as nginx's default buffers allow
MAX_HEADER_FIELDS = 100  # gunicorn's default; the API reads a handful
# After a refusal the connection is read and dropped for a moment before it closes: closing
# with unread bytes sends a TCP reset, which can destroy the answer before the client reads it.
LINGER_S = 2.0


def check_tls_files(certfile: str, keyfile: str) -> None:
    """Raise ValueError, naming the file and the fault, unless `certfile` holds a PEM
    certificate (chain) and `keyfile` the unencrypted private key that matches it: uvicorn
    would fail later with a traceback, or ask for a passphrase on the terminal."""
    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ValueError(f"cannot read {flag} {path}: {exc.strerror}") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=certfile)
    except ssl.SSLError:
        raise ValueError(f"--ssl-certfile {certfile} holds no PEM certificate") from None

    def no_passphrase():
        raise ValueError(f"--ssl-keyfile {keyfile} is encrypted: give the unencrypted key (in a 0600 file)")

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile, keyfile, no_passphrase)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(f"--ssl-keyfile {keyfile} is not the private key of the certificate in "
                             f"--ssl-certfile {certfile}") from None
        raise ValueError(f"--ssl-keyfile {keyfile} holds no PEM private key ({exc.reason or exc})") from None


def raise_open_files_limit() -> None:
    """Each connection holds a descriptor until it ends: raise the soft limit to the hard one
    (often 1,024 of 500,000 or more), so that many slow clients meet the header timeout before
    the process runs out of descriptors, which RocksDB needs too."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # an unlimited hard limit that the kernel caps lower
            pass


class _Refusal(Exception):
    """Raised in a parser callback to stop parsing; feed_data raises it on as the context of an
    HttpParserCallbackError."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class HeadLimitsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus:

    - a header timeout: a head must be complete within `header_timeout` seconds of the
      connection, or of its first byte on a kept-alive connection (the idle time before it is
      uvicorn's keep-alive timeout). Past it: 408 request_timeout when some of the head came,
      a silent close when nothing did (an idle connection is owed no answer);
    - a head of at most MAX_HEAD_BYTES bytes and MAX_HEADER_FIELDS fields, else 431;
    - a request that is not HTTP/1.1 gets a 400 in the API's error shape, not uvicorn's text.

    A refusal is answered only between requests; while a response is in progress the
    connection is closed instead (after that response when its request is whole), so that no
    answer lands in the middle of another. `on_refused(status, code)` counts refusals."""

    header_timeout: float = HEADER_TIMEOUT_S
    on_refused: Callable[[int, str], None] | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer = None
        self._bytes_since_armed = 0
        self._in_head = False  # between a message's first byte and the end of its headers
        self._head_began_in_chunk = False
        self._head_bytes_read = 0  # the head's bytes in the reads after the one it began in
        self._head_bytes_parsed = 0  # its request target and complete header lines
        self._header_fields = 0
        self._refused = False
        self._linger = None

    # -- the clock ----------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and not self._refused:
            self._bytes_since_armed = 0
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self._in_head and self._bytes_since_armed == 0 and self._between_requests():
            self.transport.close()
            return
        self._refuse(408, "request_timeout",
                     f"the request line and headers did not arrive within {self.header_timeout:g} s")

    # -- uvicorn's protocol -------------------------------------------------------------------

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc) -> None:
        self._disarm_head_timer()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: read and dropped
        self._unset_keepalive_if_required()
        if self._between_requests():
            self._arm_head_timer()
        self._bytes_since_armed += len(data)
        self._head_began_in_chunk = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():  # never with ws="none": the request went to the app as it was
                self._disarm_head_timer()
                self.handle_websocket_upgrade()
            return
        except httptools.HttpParserError as exc:
            refusal = exc.__context__
            if isinstance(refusal, _Refusal):
                self._refuse(refusal.status, refusal.code, refusal.message)
            else:
                self._refuse(400, "malformed_request", "the request is not valid HTTP/1.1")
            return
        if self._in_head and not self._head_began_in_chunk:
            # A header line still arriving is not yet in _head_bytes_parsed: this bounds it.
            self._head_bytes_read += len(data)
            if self._head_bytes_read > MAX_HEAD_BYTES:
                self._refuse(*self._too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()  # a head sent while a response is in progress (pipelining)
        self._in_head = self._head_began_in_chunk = True
        self._head_bytes_read = self._head_bytes_parsed = self._header_fields = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_fields += 1
        if self._header_fields > MAX_HEADER_FIELDS:
            raise _Refusal(431, "headers_too_large", f"the request has over {MAX_HEADER_FIELDS} header fields")
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:  # uvicorn's, should it call it
        self._refuse(400, "malformed_request", "the request is not valid HTTP/1.1")

    # -- refusals -----------------------------------------------------------------------------

    def _too_large(self) -> tuple[int, str, str]:
        return 431, "headers_too_large", f"the request line and headers exceed {MAX_HEAD_BYTES:,} bytes"

    def _count_head(self, size: int) -> None:
        self._head_bytes_parsed += size
        if self._head_bytes_parsed > MAX_HEAD_BYTES:
            raise _Refusal(*self._too_large())

    def _refuse(self, status: int, code: str, message: str) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._disarm_head_timer()
        self._unset_keepalive_if_required()
        if self.on_refused is not None:
            self.on_refused(status, code)
        if not self._between_requests():
            if self.cycle.more_body:  # its own body is broken: the app sees a disconnect
                self.transport.close()
            else:  # a later request is at fault: finish this response, then close
                self.cycle.keep_alive = False
            return
        body = orjson.dumps({"error": {"code": code, "field": None, "message": message}})
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(),
                 b"\r\nconnection: close\r\n\r\n", body]
        self.transport.write(b"".join(head))
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client sees the end once it has read the answer
        self.flow.resume_reading()
        self._linger = self.loop.call_later(LINGER_S, self.transport.close)


def protocol_class(header_timeout: float = HEADER_TIMEOUT_S,
                   on_refused: Callable[[int, str], None] | None = None) -> type[HeadLimitsProtocol]:
    """The protocol class for uvicorn.Config(http=...), with these settings."""
    return type("HeadLimitsProtocol", (HeadLimitsProtocol,),
                {"header_timeout": header_timeout,
                 "on_refused": staticmethod(on_refused) if on_refused is not None else None})
