"""The floor of per-client MJPEG fan-out: one ``os.writev`` per client per frame, nothing else.

A peer for ``bench_fanout.py``: a single-threaded server with no per-client logic beyond
the write itself. Every client gets the same response head, then at ``--fps`` one part
per tick: ``[header, payload, CRLF]`` of a fixed ``--size``, the same three-chunk
``os.writev`` of one shared payload that the gateway's fast path makes. Its CPU per
delivered frame is what the kernel charges a sender for one part on one TCP connection
(copy into the socket, TCP, loopback delivery to the reader), so it bounds what any
server that writes each client's bytes can reach on the same machine and load.

A client whose socket did not take a whole part skips frames until its remainder is out
(latest-wins, like the gateway); the loadgen keeps up, so this stays rare.

    python benchmarks/writev_floor.py --port P [--size 17000] [--fps 25]
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import time

HEAD = (
    b"HTTP/1.0 200 OK\r\n"
    b"Content-Type: multipart/x-mixed-replace;boundary=myboundary\r\n"
    b"Cache-Control: no-cache\r\n\r\n"
)
CRLF = b"\r\n"


class Client:
    """One connection: its request bytes until the head is sent, then its unsent rest."""

    __slots__ = ("fd", "request", "rest", "sock", "streaming")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.request = b""
        self.streaming = False
        self.rest: memoryview | None = None


def serve(port: int, size: int, fps: float) -> None:
    """Accept clients on loopback ``port`` and write one part per tick to each, forever."""
    listener = socket.create_server(("127.0.0.1", port), backlog=4096)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    clients: dict[int, Client] = {}
    payload = memoryview(bytes(size))
    header = b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % size
    chunks = (header, payload, CRLF)
    part = header + bytes(payload) + CRLF
    total = len(part)
    writev = os.writev
    period = 1.0 / fps
    due = time.monotonic()
    while True:
        for key, _ in sel.select(max(0.0, due - time.monotonic())):
            if key.fileobj is listener:
                _accept(listener, sel, clients)
            else:
                _read(clients[key.fd], sel, clients)
        if time.monotonic() < due:
            continue
        due += period
        for client in tuple(clients.values()):
            if not client.streaming:
                continue
            try:
                if client.rest is not None:
                    sent = writev(client.fd, (client.rest,))
                    client.rest = client.rest[sent:] if sent < len(client.rest) else None
                    continue
                sent = writev(client.fd, chunks)
            except BlockingIOError:
                continue
            except OSError:
                _drop(client, sel, clients)
                continue
            if sent < total:
                client.rest = memoryview(part)[sent:]


def _accept(
    listener: socket.socket, sel: selectors.BaseSelector, clients: dict[int, Client]
) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        client = Client(sock)
        clients[client.fd] = client
        sel.register(sock, selectors.EVENT_READ)


def _read(client: Client, sel: selectors.BaseSelector, clients: dict[int, Client]) -> None:
    try:
        data = client.sock.recv(65536)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        _drop(client, sel, clients)
        return
    if client.streaming:
        return
    client.request += data
    if b"\r\n\r\n" in client.request:
        client.sock.send(HEAD)  # a few bytes into an empty socket buffer: always whole
        client.streaming = True
        client.request = b""


def _drop(client: Client, sel: selectors.BaseSelector, clients: dict[int, Client]) -> None:
    sel.unregister(client.sock)
    clients.pop(client.fd, None)
    client.sock.close()


def main() -> None:
    """Parse arguments and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=17_000, help="payload bytes per part")
    parser.add_argument("--fps", type=float, default=25.0)
    args = parser.parse_args()
    serve(args.port, args.size, args.fps)


if __name__ == "__main__":
    main()
