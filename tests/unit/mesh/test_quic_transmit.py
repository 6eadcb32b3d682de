"""qh3's ``packet builder capacity exhausted`` on a listener held by the anti-amplification
limit (``MeshQuicConnection.datagram_payloads``; issue 10 item 5).

Two ``MeshQuicConnection`` objects are wired together in memory and driven on a virtual
clock, so the timing (qh3's PTO timers) and the datagrams lost are exactly the same on
every run. Before the fix each of the scenarios below ended the listener's connection with
``QuicConnectionError: Error: 1, reason: packet builder capacity exhausted``; now the
listener waits for the dialer's next datagram and the connection completes, and both
directions arrive intact (SHA-256).
"""

import hashlib
import os
import random
from collections.abc import Callable

import pytest
from qh3.quic import events
from qh3.quic.connection import QuicConnectionError

from receptor.netceptor import _quic

CAPACITY = "packet builder capacity exhausted"
START = 1000.0
LATENCY = 0.005


class _RecordingCore:
    """Wraps a qh3 core to count the ``poll_transmit`` calls that fail with ``CAPACITY``."""

    def __init__(self, core: object) -> None:
        self._core = core
        self.capacity_errors = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._core, name)

    def poll_transmit(self, now: float) -> object:
        try:
            return self._core.poll_transmit(now)  # type: ignore[attr-defined]
        except RuntimeError as exc:
            if str(exc) == CAPACITY:
                self.capacity_errors += 1
            raise


class _Side:
    def __init__(self, name: str, payload: bytes) -> None:
        self.name = name
        self.payload = payload
        self.quic: _quic.MeshQuicConnection | None = None
        self.recorder: _RecordingCore | None = None
        self.inbox: list[tuple[float, bytes]] = []
        self.silent_until = 0.0
        self.received = bytearray()
        self.fin = False
        self.sid: int | None = None
        self.replied = False
        self.terminated: events.ConnectionTerminated | None = None
        self.largest_datagram = 0


Drop = Callable[["_Pair", _Side, bytes], bool]


class _Pair:
    """A dialer and a listener joined by a lossy in-memory link with a fixed latency.

    The dialer opens its stream at once (0x00, then its payload, then FIN), as a large
    dial of ``_streams`` does; the listener answers with its own payload once it sees the
    stream. ``drop(pair, sender, datagram)`` decides which datagrams are lost, and a side
    that is *silent* does nothing (no datagrams read, no timers, nothing sent), as a
    starved process does.
    """

    def __init__(self, dialer_large: bool, listener_large: bool, drop: Drop | None = None):
        self.now = START
        self.listener_large = listener_large
        self.drop = drop or (lambda pair, side, datagram: False)
        self.dialer = _Side("dialer", os.urandom(300_000))
        self.listener = _Side("listener", os.urandom(250_000))
        config = _quic.client_configuration("dialer", dialer_large)
        quic = _quic.MeshQuicConnection(configuration=config)
        quic.connect(_quic.FAKE_ADDR, self.now)
        sid = quic.get_next_available_stream_id()
        quic.send_stream_data(sid, b"\x00" + self.dialer.payload, end_stream=True)
        self.dialer.quic = quic
        self.cert = _quic.self_signed_pem()
        self._transmit(self.dialer)

    def _other(self, side: _Side) -> _Side:
        return self.listener if side is self.dialer else self.dialer

    def _transmit(self, side: _Side) -> None:
        assert side.quic is not None
        for datagram in side.quic.datagram_payloads(self.now):
            side.largest_datagram = max(side.largest_datagram, len(datagram))
            if not self.drop(self, side, datagram):
                self._other(side).inbox.append((self.now + LATENCY, datagram))

    def _next_time(self) -> float | None:
        times = []
        for side in (self.dialer, self.listener):
            if side.inbox:
                times.append(max(min(t for t, _ in side.inbox), side.silent_until))
            timer = side.quic.get_timer() if side.quic is not None else None
            if timer is not None:
                times.append(max(timer, side.silent_until))
        return min(times) if times else None

    def _step(self, side: _Side) -> None:
        if self.now < side.silent_until:
            return
        due = [datagram for t, datagram in side.inbox if t <= self.now]
        side.inbox = [(t, datagram) for t, datagram in side.inbox if t > self.now]
        if due and side.quic is None:
            # The listener's connection is made by the dialer's first datagram.
            config = _quic.server_configuration(*self.cert, self.listener_large)
            side.quic = _quic.MeshQuicConnection(
                configuration=config, original_destination_connection_id=_quic.initial_dcid(due[0])
            )
            side.quic.receive_datagram(due.pop(0), _quic.FAKE_ADDR, self.now)
            side.recorder = _RecordingCore(side.quic._core)
            side.quic._core = side.recorder  # type: ignore[assignment]
        if side.quic is None:
            return
        if due:
            side.quic.receive_datagrams(due, self.now)
        timer = side.quic.get_timer()
        if timer is not None and timer <= self.now:
            side.quic.handle_timer(self.now)
        while (event := side.quic.next_event()) is not None:
            if isinstance(event, events.StreamDataReceived):
                side.sid = event.stream_id
                side.received += event.data
                side.fin = side.fin or event.end_stream
            elif isinstance(event, events.ConnectionTerminated):
                side.terminated = event
        if side is self.listener and side.sid is not None and not side.replied:
            side.replied = True
            side.quic.send_stream_data(side.sid, side.payload, end_stream=True)
        self._transmit(side)

    def run(self, limit: float = 60.0) -> "_Pair":
        """Until both payloads have arrived, or ``limit`` virtual seconds."""
        steps = 0
        while not (self.dialer.fin and self.listener.fin):
            when = self._next_time()
            if when is None or when - START > limit:
                break
            self.now = max(self.now, when)
            self._step(self.dialer)
            self._step(self.listener)
            steps += 1
            assert steps < 200_000, "no progress"
        return self

    def assert_complete(self) -> None:
        for side in (self.dialer, self.listener):
            assert side.terminated is None, f"{side.name}: {side.terminated}"
            assert side.fin, f"{side.name} did not receive the whole stream"
        sent_by_dialer = b"\x00" + self.dialer.payload
        assert hashlib.sha256(self.listener.received).digest() == (
            hashlib.sha256(sent_by_dialer).digest()
        )
        assert hashlib.sha256(self.dialer.received).digest() == (
            hashlib.sha256(self.listener.payload).digest()
        )

    @property
    def capacity_errors(self) -> int:
        assert self.listener.recorder is not None
        return self.listener.recorder.capacity_errors


def _dialer_starved(seconds: float) -> Callable[[_Pair], None]:
    def apply(pair: _Pair) -> None:
        pair.dialer.silent_until = pair.now + seconds

    return apply


MODES = pytest.mark.parametrize(
    ("dialer_large", "listener_large"),
    [
        pytest.param(True, True, id="large"),
        # A first-contact probe: 1200-byte dialer, a listener of ours answers large.
        pytest.param(False, True, id="probe"),
    ],
)


@MODES
def test_listener_waits_while_a_starved_dialer_is_silent(dialer_large, listener_large):
    """The dialer sends its ClientHello and then is starved for 8 s (as a process on a
    loaded machine can be). The listener's PTOs resend its handshake flight until its
    anti-amplification allowance (3x the 1867 or 2400 bytes received) no longer admits
    the next packet, about 6 s in: qh3 raised ``packet builder capacity exhausted``
    there. Now it waits, and the dialer's next datagrams let the handshake finish."""
    pair = _Pair(dialer_large, listener_large)
    _dialer_starved(8.0)(pair)
    pair.run()
    assert pair.capacity_errors >= 1, "the scenario no longer reaches the qh3 condition"
    assert pair.capacity_errors < 50  # waiting, not spinning
    pair.assert_complete()
    limit = _quic.LARGE_DATAGRAM if listener_large else _quic.SMALL_DATAGRAM
    assert pair.listener.largest_datagram <= limit
    if dialer_large:
        assert pair.dialer.largest_datagram > _quic.SMALL_DATAGRAM


@pytest.mark.parametrize(
    ("dialer_large", "listener_large", "seed", "rate"),
    [
        pytest.param(True, True, 17, 0.7, id="large"),
        pytest.param(False, True, 16, 0.5, id="probe"),
        # Toward upstream, both ends at 1200 bytes.
        pytest.param(False, False, 4, 0.5, id="small"),
    ],
)
def test_listener_survives_heavy_loss_during_the_handshake(
    dialer_large, listener_large, seed, rate
):
    """Random loss (half or more of all datagrams, both ways, a fixed seed) for the first
    10 s: the listener runs out of amplification allowance in the middle of it."""
    rng = random.Random(seed)

    def drop(pair: _Pair, side: _Side, datagram: bytes) -> bool:
        return pair.now - START < 10.0 and rng.random() < rate

    pair = _Pair(dialer_large, listener_large, drop).run()
    assert pair.capacity_errors >= 1, "the scenario no longer reaches the qh3 condition"
    pair.assert_complete()


class _FailingCore:
    """A core whose next ``poll_transmit`` calls return ``datagrams`` and then fail."""

    def __init__(self, core: object, datagrams: list[bytes], message: str) -> None:
        self._core = core
        self._datagrams = list(datagrams)
        self._message = message

    def __getattr__(self, name: str) -> object:
        return getattr(self._core, name)

    def poll_transmit(self, now: float) -> tuple[bytes, object] | None:
        if self._datagrams:
            return self._datagrams.pop(0), _quic.FAKE_ADDR
        raise RuntimeError(self._message)


def _listener_in_handshake() -> _quic.MeshQuicConnection:
    dialer = _quic.MeshQuicConnection(configuration=_quic.client_configuration("d", True))
    dialer.connect(_quic.FAKE_ADDR, START)
    first = dialer.datagram_payloads(START)
    config = _quic.server_configuration(*_quic.self_signed_pem(), True)
    listener = _quic.MeshQuicConnection(
        configuration=config, original_destination_connection_id=_quic.initial_dcid(first[0])
    )
    listener.receive_datagrams(first, START)
    return listener


def test_only_a_listener_in_its_handshake_treats_capacity_as_wait():
    """What was built before the condition still leaves; the condition anywhere else, or
    any other core error, still ends the connection."""
    listener = _listener_in_handshake()
    listener._core = _FailingCore(listener._core, [b"one", b"two"], CAPACITY)  # type: ignore[assignment]
    assert listener.datagram_payloads(START) == [b"one", b"two"]

    listener = _listener_in_handshake()
    listener._core = _FailingCore(listener._core, [], "connection is closed")  # type: ignore[assignment]
    with pytest.raises(QuicConnectionError, match="connection is closed"):
        listener.datagram_payloads(START)

    listener = _listener_in_handshake()
    listener._handshake_complete = True
    listener._core = _FailingCore(listener._core, [], CAPACITY)  # type: ignore[assignment]
    with pytest.raises(QuicConnectionError, match=CAPACITY):
        listener.datagram_payloads(START)

    dialer = _quic.MeshQuicConnection(configuration=_quic.client_configuration("d", True))
    dialer.connect(_quic.FAKE_ADDR, START)
    dialer._core = _FailingCore(dialer._core, [b"x"], CAPACITY)  # type: ignore[assignment]
    with pytest.raises(QuicConnectionError, match=CAPACITY):
        dialer.datagram_payloads(START)
