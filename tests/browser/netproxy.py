"""A TCP relay between the browser and the server whose cable can be pulled: ``cut()`` resets every open
connection (mid-request, as a dropped Wi-Fi or a closing mobile cell does) and refuses new ones until
``restore()``. Chromium's own offline emulation only fails requests not yet started; this drops the
one in flight, so the server really sees a half-sent PATCH."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

from tests.services.ports import free_port


class CuttableProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._down = threading.Event()
        self._stopped = threading.Event()
        self.cuts = 0
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Drop every connection now (TCP RST) and refuse new ones."""
        self._down.set()
        self.cuts += 1
        with self._lock:
            sockets, self._open = list(self._open), set()
        for s in sockets:
            _reset(s)

    def restore(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self._stopped.set()
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down.is_set():
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def _reset(s: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), like a connection that died, not one that was politely closed."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.shutdown(socket.SHUT_RDWR)  # wakes the pump thread blocked in recv()
    except OSError:
        pass
    s.close()
