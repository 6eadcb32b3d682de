"""A tiny real HTTP CONNECT proxy on 127.0.0.1 for the ws-peer proxy tests.

Every CONNECT target is sent to 127.0.0.1 at the requested port (so a test can use a
non-loopback host name, which Go's rules would otherwise never proxy). It records the
request heads it saw, can demand credentials or refuse, and pipes bytes both ways with one
thread per direction. ``close`` stops everything it started.
"""

import socket
import threading


class ConnectProxy:
    def __init__(self, refuse: bytes | None = None, credentials: str | None = None) -> None:
        self.refuse = refuse
        self.credentials = credentials
        self.requests: list[bytes] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._start(self._accept_loop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._track(client)
            self._start(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        with self._lock:
            self.requests.append(head)
        first = head.split(b"\r\n", 1)[0].split()
        if self.refuse is not None:
            client.sendall(b"HTTP/1.1 " + self.refuse + b"\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        if self.credentials is not None and (
            b"Proxy-Authorization: Basic " + self.credentials.encode() not in head
        ):
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            client.close()
            return
        if len(first) != 3 or first[0] != b"CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            client.close()
            return
        port = int(first[1].rpartition(b":")[2])
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            client.close()
            return
        upstream.settimeout(None)
        self._track(upstream)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._start(self._pipe, upstream, client)
        self._pipe(client, upstream)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        for sock in (sink, source):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self._server.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(10)
        for sock in sockets:
            sock.close()

    def __enter__(self) -> "ConnectProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
