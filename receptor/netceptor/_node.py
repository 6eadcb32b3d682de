"""The mesh node: sessions, link-state routing, forwarding and service advertisements.

This is the behaviour of upstream's ``pkg/netceptor`` (wire.md §5–§11) with one lock and
one timer thread. Each backend session runs :meth:`Netceptor.run_protocol` in its own
thread (the session's reader); everything a message triggers (forwarding, flooding, ping
replies) happens on that thread, and writes go through each session's own bounded writer.
The routing table is recomputed by the pure core function outside the lock and swapped in.

Where we differ from upstream, on purpose:

* On-demand floods and route recomputations run ``FLOOD_DELAY`` / ``ROUTE_DELAY`` after a
  change instead of 100 ms, so a mesh converges faster; the wire messages are the same.
* A newly established connection triggers a service-advertisement run within
  ``AD_DELAY_NEW_PEER``, so a joining node learns our services in seconds instead of at the
  next 60 s tick (upstream sends no ad on a new connection).
* A zero-length message, or any malformed one, is logged and dropped; upstream panics on
  the former.
"""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from receptor._core import codec
from receptor._core.highwayhash import node_hash
from receptor._core.routing import compute_routes
from receptor._errors import MeshError, ProtocolError
from receptor._goduration import format_duration
from receptor._gotime import now as time_now
from receptor._log import logger
from receptor.netceptor._backend import Backend, BackendInfo, BackendSession, SessionClosed
from receptor.netceptor._firewall import Action, FirewallRule, decide
from receptor.netceptor._messages import (
    PROBLEM_EXPIRED,
    PROBLEM_REJECTED,
    PROBLEM_SERVICE_UNKNOWN,
    RoutingUpdate,
    ServiceAdvertisement,
    UnreachableMessage,
    WorkCommand,
    random_id,
)
from receptor.netceptor._packetconn import INBOX_LIMIT, PacketConn
from receptor.netceptor._scheduler import Debounced, Scheduler

if TYPE_CHECKING:
    from receptor.netceptor._streams import Conn, Listener, StreamEngine
    from receptor.netceptor.tls import ClientTLS, ServerTLS

ROUTE_UPDATE_PERIOD = 10.0
SERVICE_AD_PERIOD = 60.0
SERVICE_AD_DELAY = 5.0
AD_DELAY_NEW_PEER = 1.0
FLOOD_DELAY = 0.02
ROUTE_DELAY = 0.01
ROUTE_RECOMPUTE_PERIOD = 24 * 3600.0
SEEN_UPDATE_EXPIRY = 3600.0
DEFAULT_IDLE_TIMEOUT = 21.0
INITIAL_MESSAGE_INTERVAL = 1.0
INITIAL_MESSAGE_COUNT = 11
MAX_FORWARDING_HOPS = 30
PING_TIMEOUT = 10.0
RESERVED_SERVICES = frozenset({"ping", "unreach"})
#: How long a session reader sleeps in ``recv`` before re-checking timers.
RECV_POLL = 1.0


class _Rejected(Exception):
    """Raised inside run_protocol to reject the peer with a reason."""


@dataclass(frozen=True)
class PingResult:
    """Outcome of one ping: round trip in nanoseconds, replying node, error text or None."""

    time_ns: int
    from_node: str
    error: str | None


class _Connection:
    """A session to one peer, established or still introducing itself."""

    __slots__ = ("cost", "last_received", "remote", "remote_established", "session")

    def __init__(self, session: BackendSession, cost: float) -> None:
        self.session = session
        self.cost = cost
        self.remote = ""
        self.remote_established = False
        self.last_received = time.monotonic()

    def send(self, message: bytes, wait: bool = True) -> None:
        try:
            self.session.send(message, wait)
        except BlockingIOError:
            # Only floods don't wait: a peer this far behind misses one periodic message
            # rather than stalling the timers (and so every other link) behind it.
            logger.debug("Send queue to %s is full; flooded message dropped", self.remote)
        except (OSError, ProtocolError) as err:
            logger.error("Backend sending error %s", err)
            self.session.close()

    def send_split(self, headers: list[bytes], payloads: list[bytes], wait: bool) -> None:
        """``send_many`` of ``header + payload`` messages; sessions that can
        (``send_split``) write the pairs without joining them."""
        send_split = getattr(self.session, "send_split", None)
        if send_split is None:
            self.send_many([h + p for h, p in zip(headers, payloads, strict=True)], wait)
            return
        try:
            send_split(headers, payloads, wait)
        except BlockingIOError:
            logger.debug("Send queue to %s is full; stream datagrams dropped", self.remote)
        except (OSError, ProtocolError) as err:
            logger.error("Backend sending error %s", err)
            self.session.close()

    def send_many(self, messages: list[bytes], wait: bool) -> None:
        """Several messages at once: one write where the session can (``send_many``),
        which is what batching the data path buys (see ``Netceptor.batch``)."""
        send_many = getattr(self.session, "send_many", None)
        if send_many is None:
            for message in messages:
                self.send(message, wait)
            return
        try:
            send_many(messages, wait)
        except BlockingIOError:
            # Only floods don't wait: a peer this far behind misses one periodic message
            # rather than stalling the timers (and so every other link) behind it.
            logger.debug("Send queue to %s is full; flooded message dropped", self.remote)
        except (OSError, ProtocolError) as err:
            logger.error("Backend sending error %s", err)
            self.session.close()


class _BatchState(threading.local):
    """A thread's batch (see ``Netceptor.batch``): stream connections whose processing
    waits for the batch's end, and messages held back per outgoing connection."""

    def __init__(self) -> None:
        self.active = False
        self.deferred: dict[object, Callable[[], None]] = {}
        self.corked: dict[tuple[_Connection, bool], list[bytes]] = {}


class Netceptor:
    """One mesh node.

    Batching (the data path's main economy): while a thread is inside a batch
    (:meth:`batch`), the data messages it sends are held per outgoing connection and
    leave together, framed into one socket write, when the batch ends; and stream
    connections that received datagrams (:meth:`defer`) are processed once at the end,
    with all of them, instead of once per datagram. A session reader runs every frame of
    one socket read as one batch, and the stream layer runs each processing pass as one.
    The bytes on the wire are the same; only the number of writes, wake-ups and QUIC
    passes drops (which also makes QUIC acknowledge several packets at once).
    """

    def __init__(
        self,
        node_id: str,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        firewall_rules: Iterable[FirewallRule] = (),
        max_forwarding_hops: int = MAX_FORWARDING_HOPS,
    ) -> None:
        self.node_id = node_id
        self.idle_timeout = idle_timeout
        self.max_forwarding_hops = max_forwarding_hops
        random24 = int.from_bytes(os.urandom(3), "big")
        self.epoch = (time.time_ns() // 1_000_000_000) * (1 << 24) + random24
        self._firewall = tuple(firewall_rules)
        self._lock = threading.RLock()
        self._sequence = 0
        self._connections: dict[str, _Connection] = {}
        self._known_info: dict[str, tuple[int, int]] = {}
        self._known_costs: dict[str, dict[str, float]] = {}
        self._seen_updates: dict[str, float] = {}
        self._routing_table: dict[str, str] = {}
        self._path_costs: dict[str, float] = {}
        self._names: dict[int, str] = {}
        self._hashes: dict[str, int] = {}
        self._services: dict[str, PacketConn] = {}
        self._local_ads: dict[str, tuple[int, dict[str, str] | None]] = {}
        self._remote_ads: dict[str, dict[str, ServiceAdvertisement]] = {}
        self._work_commands: list[WorkCommand] = []
        self._backends: list[Backend] = []
        self._streams: StreamEngine | None = None
        self.backend_count = 0
        self._done = threading.Event()
        self._batch = _BatchState()
        self.add_name(node_id)
        self._scheduler = Scheduler(name=f"netceptor-{node_id}")
        self._route_flood = Debounced(
            self._scheduler, self._send_routing_update, FLOOD_DELAY, ROUTE_UPDATE_PERIOD
        )
        self._route_calc = Debounced(
            self._scheduler, self._update_routing_table, ROUTE_DELAY, ROUTE_RECOMPUTE_PERIOD
        )
        self._service_ads = Debounced(
            self._scheduler, self._send_service_ads, SERVICE_AD_DELAY, SERVICE_AD_PERIOD
        )
        self._scheduler.call_later(SEEN_UPDATE_EXPIRY / 2, self._expire_seen_updates)

    # ----------------------------------------------------------------- names and hashes

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the node's scheduler thread after ``delay`` seconds (it must
        be short; used for the systemd watchdog, which thereby checks that thread too)."""
        self._scheduler.call_later(delay, callback)

    def add_name(self, name: str) -> int:
        """Hash a node or service name and remember it (first name wins on collision)."""
        if name.lower() == "localhost":
            name = self.node_id
        value = self._hashes.get(name)
        if value is None:
            value = node_hash(name)
            with self._lock:
                self._hashes[name] = value
                self._names.setdefault(value, name)
        return value

    # ----------------------------------------------------------------- lifecycle

    def add_backend(self, backend: Backend, info: BackendInfo) -> None:
        """Start a backend; its sessions run the mesh protocol with ``info``'s policy."""
        if info.cost <= 0:
            raise ValueError("connection cost must be positive")
        with self._lock:
            self._backends.append(backend)
            self.backend_count += 1
        backend.start(self, info)

    def cancel_backends(self) -> None:
        """Stop every backend and wait for their sessions to end (used by reload)."""
        logger.debug("Canceling backends")
        with self._lock:
            backends, self._backends = self._backends, []
            self.backend_count = 0
        for backend in backends:
            backend.stop()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the node shuts down (e.g. a duplicate node ID was detected)."""
        return self._done.wait(timeout)

    def shutdown(self) -> None:
        """Stop everything: backends, timers and services."""
        if self._done.is_set():
            return
        self._done.set()
        self._route_flood.cancel()
        self._route_calc.cancel()
        self._service_ads.cancel()
        self.cancel_backends()
        self._scheduler.stop()
        with self._lock:
            services = list(self._services.values())
        for conn in services:
            conn.close()
        if self._streams is not None:
            self._streams.stop()

    # ----------------------------------------------------------------- batching

    def batch_begin(self) -> bool:
        """Start a batch on this thread; False when one is already running (then the
        caller must not end it)."""
        state = self._batch
        if state.active:
            return False
        state.active = True
        return True

    def batch_end(self) -> None:
        """Run what the batch deferred and send what it held, then end it."""
        state = self._batch
        try:
            while state.deferred or state.corked:
                while state.deferred:
                    deferred, state.deferred = state.deferred, {}
                    for run in deferred.values():
                        try:
                            run()
                        except Exception:
                            logger.exception("Error processing deferred mesh work")
                corked, state.corked = state.corked, {}
                for (conn, wait), messages in corked.items():
                    if len(messages) == 1:
                        conn.send(messages[0], wait)
                    else:
                        conn.send_many(messages, wait)
        finally:
            state.active = False
            state.deferred.clear()
            state.corked.clear()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Batch the data path of this thread for the duration (nests: only the
        outermost batch flushes)."""
        if not self.batch_begin():
            yield
            return
        try:
            yield
        finally:
            self.batch_end()

    def defer(self, key: object, run: Callable[[], None]) -> bool:
        """Inside a batch, call ``run`` once when the batch ends (per ``key``) and return
        True; outside one, return False (the caller does the work now)."""
        state = self._batch
        if not state.active:
            return False
        state.deferred[key] = run
        return True

    # ----------------------------------------------------------------- session protocol

    def run_protocol(self, session: BackendSession, info: BackendInfo) -> None:
        """Run the connection protocol (wire.md §5) on one session until it ends.

        Called by a backend in the session's own thread; returns when the session is over
        and always closes it.
        """
        conn = _Connection(session, info.cost)
        buffered = getattr(session, "buffered_frames", None)
        established = False
        initial_sent = 0
        next_initial = time.monotonic()
        try:
            while not self._done.is_set():
                now = time.monotonic()
                if not established:
                    if now >= next_initial:
                        logger.debug("Sending initial connection message")
                        conn.send(self._make_routing_update().encode())
                        initial_sent += 1
                        if initial_sent >= INITIAL_MESSAGE_COUNT:
                            logger.warning("Giving up on connection initialization")
                            return
                        next_initial = now + INITIAL_MESSAGE_INTERVAL
                    timeout = max(0.0, next_initial - now)
                else:
                    idle = now - conn.last_received
                    if idle > self.idle_timeout:
                        logger.warning(
                            "Timing out connection %s, idle for the past %s",
                            conn.remote,
                            format_duration(int(self.idle_timeout * 1e9)),
                        )
                        return
                    timeout = min(RECV_POLL, self.idle_timeout - idle + 0.01)
                if self._batch.active and not (buffered is not None and buffered()):
                    self.batch_end()  # never wait for input with a batch held back
                message = session.recv(timeout)
                if message is None:
                    continue
                conn.last_received = time.monotonic()
                if not message:
                    logger.error(
                        "Backend receiving error: zero-length message from %s", conn.remote
                    )
                    continue
                if established:
                    if buffered is None:
                        self._handle_established(conn, message)
                        continue
                    # Every frame of one socket read is one batch (see the class docstring).
                    self.batch_begin()
                    self._handle_established(conn, message)
                    if not buffered():
                        self.batch_end()
                elif self._handle_unestablished(conn, info, message):
                    established = True
        except _Rejected as rejection:
            conn.send(codec.REJECT_MESSAGE)
            logger.error(
                "Backend error: %s: rejected connection with node %s because %s",
                self.node_id,
                conn.remote,
                rejection,
            )
        except SessionClosed:
            pass
        except (OSError, ProtocolError) as err:
            if not self._done.is_set():
                logger.error("Backend receiving error %s", err)
        finally:
            if self._batch.active:
                self.batch_end()
            session.close()
            if established:
                self._remove_connection(conn)
                self._route_flood.request()
                self._route_calc.request()

    def _handle_unestablished(self, conn: _Connection, info: BackendInfo, message: bytes) -> bool:
        """Handle a message before establishment; True once the connection is established."""
        kind = message[0]
        if kind == codec.MSG_REJECT:
            _peer_rejected()
        if kind != codec.MSG_ROUTING_UPDATE:
            return False
        try:
            update = RoutingUpdate.decode(message[1:])
        except ProtocolError as err:
            logger.error("Error unpacking routing update: %s", err)
            return False
        remote = update.forwarding_node
        conn.remote = remote
        if not remote:
            # Upstream would establish a link to a node named "": refuse it instead.
            raise _Rejected("it did not send a node ID")
        if remote == self.node_id:
            raise _Rejected("it tried to connect using our own node ID")
        if info.allowed_peers is not None and remote not in info.allowed_peers:
            raise _Rejected("it is not in the allowed peers list")
        if remote in info.node_cost:
            conn.cost = info.node_cost[remote]
        with self._lock:
            if remote in self._connections:
                raise _Rejected("it connected using a node ID we are already connected to")
            self._connections[remote] = conn
            self._known_costs.setdefault(self.node_id, {})[remote] = conn.cost
            self._known_costs.setdefault(remote, {})[self.node_id] = conn.cost
        self.add_name(remote)
        logger.info("Connection established with %s", remote)
        self._route_flood.request()
        self._route_calc.request()
        if self._local_ads:
            self._service_ads.request(AD_DELAY_NEW_PEER)
        return True

    def _handle_established(self, conn: _Connection, message: bytes) -> None:
        kind = message[0]
        if kind == codec.MSG_DATA:
            self._handle_data_frame(message)
        elif kind == codec.MSG_ROUTING_UPDATE:
            try:
                update = RoutingUpdate.decode(message[1:])
            except ProtocolError as err:
                logger.error("Error unpacking routing update: %s", err)
                return
            if update.forwarding_node != conn.remote:
                raise _Rejected(
                    f"remote node ID changed unexpectedly from {conn.remote} to {update.node_id}"
                )
            if update.node_id == conn.remote:
                remote_cost = update.connections.get(self.node_id)
                if remote_cost is None:
                    if conn.remote_established:
                        raise _Rejected("remote node no longer lists us as a connection")
                    return  # a late initial message: not a routing update
                conn.remote_established = True
                if remote_cost != conn.cost:
                    raise _Rejected("we disagree about the connection cost")
            self._handle_routing_update(update, conn.remote)
        elif kind == codec.MSG_SERVICE_ADVERTISEMENT:
            self._handle_service_advertisement(message, conn.remote)
        elif kind == codec.MSG_REJECT:
            _peer_rejected()
        else:
            logger.warning("Unknown message type %d from %s", kind, conn.remote)

    def _remove_connection(self, conn: _Connection) -> None:
        with self._lock:
            if self._connections.get(conn.remote) is conn:
                del self._connections[conn.remote]
                self._known_costs.get(conn.remote, {}).pop(self.node_id, None)
                self._known_costs.get(self.node_id, {}).pop(conn.remote, None)

    # ----------------------------------------------------------------- routing

    def _make_routing_update(self, suspected_duplicate: int = 0) -> RoutingUpdate:
        with self._lock:
            self._sequence += 1
            connections = {node: conn.cost for node, conn in self._connections.items()}
            sequence = self._sequence
        return RoutingUpdate(
            self.node_id,
            random_id(),
            self.epoch,
            sequence,
            connections,
            self.node_id,
            suspected_duplicate,
        )

    def _send_routing_update(self, suspected_duplicate: int = 0) -> None:
        if not self._connections:
            return
        update = self._make_routing_update(suspected_duplicate)
        summary = " ".join(f"{node}({cost:.2f})" for node, cost in update.connections.items())
        if suspected_duplicate:
            logger.warning(
                "Sending duplicate node notification %s. Connections: %s",
                update.update_id,
                summary,
            )
        else:
            logger.debug("Sending routing update %s. Connections: %s", update.update_id, summary)
        self._flood(update.encode())

    def _flood(self, message: bytes, exclude: str | None = None) -> None:
        for node, conn in list(self._connections.items()):
            if node != exclude:
                conn.send(message, wait=False)

    def _handle_routing_update(self, update: RoutingUpdate, received_from: str) -> None:
        """wire.md §7.2."""
        if not update.node_id:
            return
        if update.node_id == self.node_id:
            if update.epoch == self.epoch:
                return
            if update.suspected_duplicate == self.epoch:
                logger.error(
                    "We are a duplicate node with ID %s and epoch %d.  Shutting down.",
                    self.node_id,
                    self.epoch,
                )
                threading.Thread(target=self.shutdown, name="duplicate-shutdown").start()
                return
            if update.epoch > self.epoch:
                logger.error("Duplicate node ID %s detected via %s", update.node_id, received_from)
                self._send_routing_update(update.epoch)
            return
        changed = False
        with self._lock:
            if update.update_id in self._seen_updates:
                return
            self._seen_updates[update.update_id] = time.monotonic()
            known = self._known_info.get(update.node_id)
            if update.suspected_duplicate:
                logger.warning(
                    "Node %s with epoch %d sent update %s suspecting a duplicate node "
                    "with epoch %d",
                    update.node_id,
                    update.epoch,
                    update.update_id,
                    update.suspected_duplicate,
                )
                if known is not None and known[0] == update.suspected_duplicate:
                    self._known_info[update.node_id] = (update.epoch, update.sequence)
            else:
                logger.debug(
                    "Received routing update %s from %s via %s",
                    update.update_id,
                    update.node_id,
                    received_from,
                )
                if known is not None:
                    if update.epoch < known[0] or (
                        update.epoch == known[0] and update.sequence <= known[1]
                    ):
                        return
                else:
                    self._route_flood.request()
                self._known_info[update.node_id] = (update.epoch, update.sequence)
                if update.connections != self._known_costs.get(update.node_id):
                    changed = True
                    self._known_costs[update.node_id] = dict(update.connections)
                    for node, edges in self._known_costs.items():
                        if node != self.node_id and node not in update.connections:
                            edges.pop(update.node_id, None)
        if known is None and not update.suspected_duplicate:
            self.add_name(update.node_id)
        if changed:
            self._route_calc.request()
        update.forwarding_node = self.node_id
        self._flood(update.encode(), exclude=received_from)

    def _update_routing_table(self) -> None:
        with self._lock:
            snapshot = {node: dict(edges) for node, edges in self._known_costs.items()}
        next_hops, path_costs = compute_routes(self.node_id, snapshot)
        with self._lock:
            self._routing_table = next_hops
            self._path_costs = path_costs
        if logger.isEnabledFor(logging.INFO):
            logger.info("Known Connections:")
            for node, edges in sorted(snapshot.items()):
                peers = "".join(f"{peer}({cost:.2f}) " for peer, cost in sorted(edges.items()))
                logger.info("   %s: %s", node, peers)
            logger.info("Routing Table:")
            for node, via in sorted(next_hops.items()):
                logger.info("   %s via %s", node, via)

    def _expire_seen_updates(self) -> None:
        threshold = time.monotonic() - SEEN_UPDATE_EXPIRY
        with self._lock:
            for update_id in [u for u, t in self._seen_updates.items() if t < threshold]:
                del self._seen_updates[update_id]
        if not self._done.is_set():
            self._scheduler.call_later(SEEN_UPDATE_EXPIRY / 2, self._expire_seen_updates)

    def path_cost(self, node: str) -> float | None:
        return self._path_costs.get(node)

    def routes(self) -> dict[str, str]:
        """A copy of the routing table: destination → next hop."""
        return dict(self._routing_table)

    def services(self) -> frozenset[str]:
        """Names of the local services (reserved ones included)."""
        with self._lock:
            return frozenset(self._services) | RESERVED_SERVICES

    # ----------------------------------------------------------------- data messages

    def _handle_data_frame(self, frame: bytes) -> None:
        try:
            hops, from_hash, to_hash, from_service, to_service, payload = codec.decode_data(frame)
        except ProtocolError as err:
            logger.error("Error translating data to message struct: %s", err)
            return
        from_node = self._names.get(from_hash)
        to_node = self._names.get(to_hash)
        if from_node is None or to_node is None:
            logger.error("Error translating data to message struct: hash not found")
            return
        try:
            self._dispatch(hops, from_node, to_node, from_service, to_service, payload, frame)
        except MeshError as err:
            logger.error("Error handling message data: %s", err)

    def send_message(
        self,
        from_service: str,
        to_node: str,
        to_service: str,
        payload: bytes,
        hops_to_live: int | None = None,
        wait: bool = True,
    ) -> None:
        """Originate one data message (wire.md §9); local problems raise ``MeshError``.

        ``wait=False`` drops the message when the next hop's send queue is full instead of
        waiting (the stream layer's datagrams: QUIC retransmits them)."""
        if len(from_service.encode()) > 8 or len(to_service.encode()) > 8:
            raise MeshError("service name too long")
        if to_node.lower() == "localhost":
            to_node = self.node_id
        self.add_name(to_node)
        hops = self.max_forwarding_hops if hops_to_live is None else hops_to_live
        self._dispatch(hops, self.node_id, to_node, from_service, to_service, payload, None, wait)

    def send_messages(
        self,
        from_service: str,
        to_node: str,
        to_service: str,
        payloads: list[bytes],
        wait: bool = True,
    ) -> None:
        """``send_message`` for several payloads to one destination (a stream pass's
        datagrams): routed once and written to the next hop in one go, in order, by the
        calling thread (so a connection's packets never overtake each other)."""
        if len(payloads) == 1 or self._firewall or to_node in (self.node_id, "localhost"):
            for payload in payloads:
                self.send_message(from_service, to_node, to_service, payload, wait=wait)
            return
        if len(from_service.encode()) > 8 or len(to_service.encode()) > 8:
            raise MeshError("service name too long")
        hops = self.max_forwarding_hops
        if hops <= 0:
            for payload in payloads:
                self.send_message(from_service, to_node, to_service, payload, wait=wait)
            return
        next_hop = self._routing_table.get(to_node)
        if next_hop is None:
            raise MeshError("no route to node")
        conn_out = self._connections.get(next_hop)
        if conn_out is None:
            raise MeshError("no connection to next hop")
        header = codec.encode_data(
            hops - 1,
            self.add_name(self.node_id),
            self.add_name(to_node),
            from_service,
            to_service,
            b"",
        )
        conn_out.send_split([header] * len(payloads), payloads, wait)

    def _dispatch(
        self,
        hops: int,
        from_node: str,
        to_node: str,
        from_service: str,
        to_service: str,
        payload: bytes,
        frame: bytes | None,
        wait: bool = True,
    ) -> None:
        if self._firewall:
            action = decide(self._firewall, from_node, to_node, from_service, to_service)
            if action is Action.DROP:
                return
            if action is Action.REJECT:
                if from_service != "unreach":
                    self._send_unreachable(
                        from_node, to_node, from_service, to_service, PROBLEM_REJECTED
                    )
                return
        if to_node == self.node_id:
            if to_service == "ping":
                self.send_message("ping", from_node, from_service, b"")
                return
            if to_service == "unreach":
                self._handle_unreachable(payload, from_node)
                return
            conn = self._services.get(to_service)
            if conn is None:
                if from_node == self.node_id:
                    raise MeshError(PROBLEM_SERVICE_UNKNOWN)
                self._send_unreachable(
                    from_node, to_node, from_service, to_service, PROBLEM_SERVICE_UNKNOWN
                )
                return
            conn.deliver(payload, from_node, from_service)
            return
        if hops <= 0:
            if from_service != "unreach":
                self._send_unreachable(
                    from_node, to_node, from_service, to_service, PROBLEM_EXPIRED
                )
            return
        next_hop = self._routing_table.get(to_node)
        if next_hop is None:
            raise MeshError("no route to node")
        conn_out = self._connections.get(next_hop)
        if conn_out is None:
            raise MeshError("no connection to next hop")
        if frame is None:
            message = codec.encode_data(
                hops - 1,
                self.add_name(from_node),
                self.add_name(to_node),
                from_service,
                to_service,
                payload,
            )
        else:
            message = codec.with_hops(frame, hops - 1)
        state = self._batch
        if state.active:
            state.corked.setdefault((conn_out, wait), []).append(message)
        else:
            conn_out.send(message, wait)

    def _send_unreachable(
        self, from_node: str, to_node: str, from_service: str, to_service: str, problem: str
    ) -> None:
        body = UnreachableMessage(from_node, to_node, from_service, to_service, problem).encode()
        try:
            self.send_message("unreach", from_node, "unreach", body)
        except MeshError as err:
            logger.debug("Could not send unreachable message to %s: %s", from_node, err)

    def _handle_unreachable(self, payload: bytes, from_node: str) -> None:
        try:
            message = UnreachableMessage.decode(payload, from_node)
        except ProtocolError as err:
            logger.error("Error handling message data: %s", err)
            return
        logger.warning("Received unreachable message from %s", from_node)
        if message.from_node == self.node_id:
            conn = self._services.get(message.from_service)
            if conn is not None:
                conn.deliver_unreachable(message)

    # ----------------------------------------------------------------- services

    def listen_packet(
        self,
        service: str = "",
        *,
        advertise: bool = False,
        conn_type: int = 0,
        tags: dict[str, str] | None = None,
        inbox_limit: int = INBOX_LIMIT,
        factory: Callable[["Netceptor", str, int, int], PacketConn] | None = None,
    ) -> PacketConn:
        """Register a datagram service (``""`` = ephemeral name); wire.md §13.

        ``inbox_limit`` bounds the datagrams held for a slow reader (0 drops them all).
        ``factory`` builds the conn instead of ``PacketConn`` (the stream layer's endpoints
        take datagrams straight from the session reader, without a queue).
        """
        with self._lock:
            if not service:
                while True:
                    service = random_id()
                    if service not in RESERVED_SERVICES and service not in self._services:
                        break
            elif len(service.encode()) > 8:
                raise MeshError(f"service name {service} too long")
            elif service in RESERVED_SERVICES or service in self._services:
                raise MeshError(f"service {service} is already listening")
            conn = (factory or PacketConn)(self, service, self.max_forwarding_hops, inbox_limit)
            self._services[service] = conn
            if advertise:
                self._local_ads[service] = (conn_type, tags)
        if advertise:
            self._service_ads.request()
        return conn

    def _stream_engine(self) -> "StreamEngine":
        with self._lock:
            if self._streams is None:
                from receptor.netceptor._streams import StreamEngine

                self._streams = StreamEngine(self)
            return self._streams

    def listen(
        self,
        service: str,
        tls: "ServerTLS | None" = None,
        advertise: bool = True,
        tags: dict[str, str] | None = None,
    ) -> "Listener":
        """Accept mesh stream connections on ``service`` (``""`` = ephemeral); wire.md §14."""
        return self._stream_engine().listen(service, tls, advertise, tags)

    def dial(
        self,
        node: str,
        service: str,
        tls: "ClientTLS | None" = None,
        timeout: float | None = None,
    ) -> "Conn":
        """Open a mesh stream to ``node:service`` (wire.md §14.3)."""
        return self._stream_engine().dial(node, service, tls, timeout)

    def unregister(self, conn: PacketConn) -> None:
        """Remove a closed PacketConn; flood a cancel ad if it was advertised."""
        with self._lock:
            if self._services.get(conn.service) is conn:
                del self._services[conn.service]
            advert = self._local_ads.pop(conn.service, None)
        if advert is not None and not self._done.is_set():
            cancel = ServiceAdvertisement(
                self.node_id, conn.service, time_now(), advert[0], None, None, cancel=True
            )
            self._flood(cancel.encode())

    def add_work_command(self, work_type: str, secure: bool) -> None:
        """List a work type in the control service's advertisement."""
        with self._lock:
            self._work_commands.append(WorkCommand(work_type, secure))

    def _local_advertisements(self, for_status: bool = False) -> list[ServiceAdvertisement]:
        """Our own ads, stamped now. Work types go on the control service's ad; upstream's
        ``status`` shows them on every local ad, and so does ours."""
        stamp = time_now()
        with self._lock:
            work = list(self._work_commands) or None
            return [
                ServiceAdvertisement(
                    self.node_id,
                    service,
                    stamp,
                    conn_type,
                    tags,
                    work
                    if for_status or (tags is not None and tags.get("type") == "Control Service")
                    else None,
                )
                for service, (conn_type, tags) in sorted(self._local_ads.items())
            ]

    def _send_service_ads(self) -> None:
        for ad in self._local_advertisements():
            logger.debug("Sending service advertisement: %s", ad)
            self._flood(ad.encode())

    def _handle_service_advertisement(self, message: bytes, received_from: str) -> None:
        try:
            ad = ServiceAdvertisement.decode(message[1:])
        except ProtocolError as err:
            logger.error("Error handling service advertisement: %s", err)
            return
        logger.debug("Received service advertisement from %s", ad.node_id)
        with self._lock:
            ads = self._remote_ads.get(ad.node_id, {})
            current = ads.get(ad.service)
            if current is not None and ad.time[0] <= current.time[0]:
                return
            if ad.cancel:
                ads.pop(ad.service, None)
                if not ads:
                    self._remote_ads.pop(ad.node_id, None)
            else:
                self._remote_ads.setdefault(ad.node_id, ads)[ad.service] = ad
        self._flood(message, exclude=received_from)

    # ----------------------------------------------------------------- status and diagnostics

    def status(self) -> dict[str, Any]:
        """Upstream's ``Status`` (control.md §3.1), in Go's JSON order."""
        with self._lock:
            connections = [
                {"NodeID": node, "Cost": conn.cost}
                for node, conn in sorted(self._connections.items())
            ]
            routes = dict(sorted(self._routing_table.items()))
            costs = {
                node: dict(sorted(edges.items()))
                for node, edges in sorted(self._known_costs.items())
            }
            remote = [
                ad
                for node, ads in sorted(self._remote_ads.items())
                if node != self.node_id
                for _, ad in sorted(ads.items())
            ]
        ads = sorted(
            remote + self._local_advertisements(for_status=True),
            key=lambda a: (a.node_id, a.service),
        )
        return {
            "NodeID": self.node_id,
            "Connections": connections,
            "RoutingTable": routes,
            "Advertisements": [ad.to_json() for ad in ads],
            "KnownConnectionCosts": costs,
        }

    def ping(self, target: str, hops_to_live: int | None = None) -> PingResult:
        """Send one ping and wait for the reply or an error (wire.md §9.2)."""
        conn = self.listen_packet("")
        try:
            if hops_to_live is not None:
                conn.hops_to_live = hops_to_live
            start = time.perf_counter_ns()
            try:
                conn.write_to(b"", target, "ping")
            except MeshError as err:
                return PingResult(time.perf_counter_ns() - start, self.node_id, str(err))
            try:
                item = conn.read_any(PING_TIMEOUT)
            except TimeoutError:
                return PingResult(time.perf_counter_ns() - start, "", "timeout")
            except MeshError:
                return PingResult(time.perf_counter_ns() - start, "", "netceptor shutdown")
            elapsed = time.perf_counter_ns() - start
            if isinstance(item, UnreachableMessage):
                return PingResult(elapsed, item.received_from, item.problem)
            return PingResult(elapsed, item[1], None)
        finally:
            conn.close()

    def traceroute(self, target: str) -> list[PingResult]:
        """Ping with hops 0, 1, … until the target answers or a hop fails (wire.md §9.2)."""
        results = []
        for hops in range(self.max_forwarding_hops + 1):
            result = self.ping(target, hops)
            error = result.error if result.error != PROBLEM_EXPIRED else None
            results.append(PingResult(result.time_ns, result.from_node, error))
            if error is not None or result.error is None:
                break
        return results


def _peer_rejected() -> None:
    logger.warning("Received a rejection message from peer.")
    logger.error("Backend error: remote node rejected the connection")
    raise SessionClosed("remote node rejected the connection")
