"""A minimal blocking HTTP/1.1 client for the load generator.

Why not httpx: the load generator must never be the bottleneck. A request body goes out with one
``socket.sendall`` of a memoryview (one C call that releases the GIL, no copy in Python), and the response
is parsed with a few ``bytes`` operations. Keep-alive connections; ``Content-Length`` and chunked responses.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

_MAX_HEAD = 64 * 1024


class HttpError(Exception):
    """The server closed the connection or sent something that is not HTTP/1.1."""


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class Connection:
    """One keep-alive connection to ``host:port``; reconnects when the server closed it."""

    def __init__(self, host: str, port: int, timeout: float = 300.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self._buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self._buf = sock, b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(
        self, method: str, path: str, headers: dict[str, str], body: list[memoryview] | bytes | None = None
    ) -> Response:
        """One request; ``body`` is bytes or a list of memoryviews sent back to back (no copy)."""
        sock = self.sock or self._connect()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        parts = [body] if isinstance(body, bytes) else (body or [])
        lines.append(f"Content-Length: {sum(len(p) for p in parts)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if sum(len(p) for p in parts) <= 64 * 1024:
                sock.sendall(head + b"".join(parts))
            else:
                sock.sendall(head)
                for part in parts:
                    sock.sendall(part)
            response = self._read_response(method)
        except OSError as exc:
            self.close()
            raise HttpError(f"{method} {path}: {exc}") from exc
        if response.header("connection").lower() == "close":
            self.close()
        return response

    def _recv(self) -> bytes:
        assert self.sock is not None
        data = self.sock.recv(256 * 1024)
        if not data:
            raise HttpError("connection closed by the server")
        return data

    def _read_response(self, method: str) -> Response:
        while b"\r\n\r\n" not in self._buf:
            if len(self._buf) > _MAX_HEAD:
                raise HttpError("response head too large")
            self._buf += self._recv()
        head, _, self._buf = self._buf.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        response = Response(int(parts[1]), headers)
        if method == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200:
            return response
        if "chunked" in headers.get("transfer-encoding", "").lower():
            response.body = self._read_chunked()
        else:
            response.body = self._read_exact(int(headers.get("content-length", "0") or 0))
        return response

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._buf += self._recv()
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _read_line(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._buf += self._recv()
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _read_chunked(self) -> bytes:
        out: list[bytes] = []
        while True:
            size = int(self._read_line().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self._read_line():  # trailers, then the empty line
                    pass
                return b"".join(out)
            out.append(self._read_exact(size))
            self._read_exact(2)
