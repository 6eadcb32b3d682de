"""Our node against the byte stream of a real upstream node.

tests/data/wire holds a TCP session between two upstream Go nodes: ``beta`` dialled
``alpha``. Here a raw socket plays alpha, replaying alpha's recorded frames, and our daemon
plays beta. What our node sends must have the shape of what the Go beta sent (same message
types, JSON keys in the same order, same values but for the random IDs, epochs and times),
and what the Go alpha sent must be understood (routes, ping replies, service ads).
"""

import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from receptor._core import codec

from .harness import peer, wait_until

pytestmark = pytest.mark.integration

FRAMES = [
    (record["dir"], bytes.fromhex(record["hex"]))
    for record in map(
        json.loads,
        (Path(__file__).parent.parent / "data" / "wire" / "tcp-session-frames.jsonl")
        .read_text()
        .splitlines(),
    )
]
FROM_ALPHA = [frame for direction, frame in FRAMES if direction == "listener->dialer"]
FROM_BETA = [frame for direction, frame in FRAMES if direction == "dialer->listener"]


def shape(message: bytes) -> object:
    """A message with its run-to-run values blanked: IDs, epochs, times, service names."""
    if message[0] == codec.MSG_DATA:
        return message[:20] + b"<svc>" + message[28:36]
    body = json.loads(message[1:])
    for key in ("UpdateID", "UpdateEpoch", "Time"):
        if key in body:
            body[key] = "?"
    return message[0], list(body.items())


class FakeAlpha:
    """A listening socket that speaks alpha's recorded frames."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None
        self.framer = codec.Framer()
        self.pending: list[bytes] = []

    def accept(self) -> None:
        self.server.settimeout(20)
        self.conn, _ = self.server.accept()
        self.conn.settimeout(20)

    def send(self, message: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(codec.frame(message))

    def receive(self, kind: int) -> bytes:
        """The next message of the given type (others are collected and skipped)."""
        assert self.conn is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            while self.pending:
                message = self.pending.pop(0)
                if message[0] == kind:
                    return message
            self.pending.extend(self.framer.feed(self.conn.recv(65536)))
        raise AssertionError(f"no message of type {kind}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


@pytest.fixture
def alpha():
    fake = FakeAlpha()
    yield fake
    fake.close()


def test_our_node_speaks_to_a_go_node_as_the_go_node_did(mesh, alpha):
    beta = mesh.node("beta", peer(alpha.port), start=False)
    beta.start(wait=True)
    alpha.accept()
    # 1. Both sides introduce themselves; our first update has the Go beta's shape.
    ours = alpha.receive(codec.MSG_ROUTING_UPDATE)
    assert shape(ours) == shape(FROM_BETA[0])
    assert json.loads(ours[1:])["UpdateSequence"] == 1
    alpha.send(FROM_ALPHA[0])
    alpha.send(FROM_ALPHA[1])  # alpha's update listing beta: the link is established
    # 2. beta now lists alpha, exactly as the Go beta did.
    while True:
        ours = alpha.receive(codec.MSG_ROUTING_UPDATE)
        if json.loads(ours[1:])["Connections"]:
            break
    assert shape(ours) == shape(FROM_BETA[1])
    wait_until(lambda: beta.routes() == {"alpha": "alpha"})
    # 3. alpha's recorded service advertisements are accepted and shown as sent.
    for message in FROM_ALPHA:
        if message[0] == codec.MSG_SERVICE_ADVERTISEMENT:
            alpha.send(message)
    recorded = {
        json.loads(m[1:])["Service"]: json.loads(m[1:])["Time"]
        for m in FROM_ALPHA
        if m[0] == codec.MSG_SERVICE_ADVERTISEMENT
    }
    wait_until(
        lambda: (
            {
                a["Service"]: a["Time"]
                for a in beta.status()["Advertisements"]
                if a["NodeID"] == "alpha"
            }
            == recorded
        )
    )
    # 4. Our control service's advertisement has the Go beta's shape.
    ad = alpha.receive(codec.MSG_SERVICE_ADVERTISEMENT)
    assert shape(ad) == shape(next(m for m in FROM_BETA if m[0] == codec.MSG_SERVICE_ADVERTISEMENT))
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", json.loads(ad[1:])["Time"]
    )


def test_ping_frames_match_the_go_nodes(mesh, alpha):
    beta = mesh.node("beta", peer(alpha.port), start=False)
    beta.start(wait=True)
    alpha.accept()
    alpha.receive(codec.MSG_ROUTING_UPDATE)
    alpha.send(FROM_ALPHA[0])
    alpha.send(FROM_ALPHA[1])
    wait_until(lambda: beta.routes() == {"alpha": "alpha"})

    result: dict[str, object] = {}
    pinger = threading.Thread(target=lambda: result.update(beta.command("ping alpha")))
    pinger.start()
    request = alpha.receive(codec.MSG_DATA)
    recorded_request = next(m for m in FROM_BETA if m[0] == 0 and m[28:32] == b"ping")
    assert shape(request) == shape(recorded_request)
    # Answer with the Go alpha's recorded reply, addressed to our ephemeral service.
    recorded_reply = next(m for m in FROM_ALPHA if m[0] == 0 and m[20:24] == b"ping")
    alpha.send(recorded_reply[:28] + request[20:28] + recorded_reply[36:])
    pinger.join(15)
    assert result["Success"] is True and result["From"] == "alpha"
