"""The mesh protocol between in-memory nodes: handshake, routing, ping, rejections, bad input."""

import itertools
import json
import logging

import pytest

from receptor._core import codec
from receptor._core.highwayhash import node_hash
from receptor.netceptor import BackendInfo, RoutingUpdate, parse_rules

from .memlink import MemoryBackend, link, session_pair, wait_until


def line(make_node, *names, **kwargs):
    nodes = [make_node(name, **kwargs) for name in names]
    for left, right in itertools.pairwise(nodes):
        link(left, right)
    return nodes


def converged(nodes):
    names = {n.node_id for n in nodes}
    return all(set(n.routes()) == names - {n.node_id} for n in nodes)


def test_two_nodes_establish_and_route(make_node):
    a, b = line(make_node, "a", "b")
    wait_until(lambda: converged([a, b]))
    status = a.status()
    assert status["Connections"] == [{"NodeID": "b", "Cost": 1.0}]
    assert status["KnownConnectionCosts"] == {"a": {"b": 1.0}, "b": {"a": 1.0}}
    assert status["RoutingTable"] == {"b": "b"}


def test_line_of_five_converges_and_pings_end_to_end(make_node):
    nodes = line(make_node, "n1", "n2", "n3", "n4", "n5")
    wait_until(lambda: converged(nodes))
    assert nodes[0].routes() == {"n2": "n2", "n3": "n2", "n4": "n2", "n5": "n2"}
    result = nodes[0].ping("n5")
    assert result.error is None and result.from_node == "n5" and result.time_ns > 0
    hops = nodes[0].traceroute("n5")
    assert [h.from_node for h in hops] == ["n1", "n2", "n3", "n4", "n5"]
    assert all(h.error is None for h in hops)


def test_ping_self_and_localhost(make_node):
    (a,) = line(make_node, "a")
    assert a.ping("a").from_node == "a"
    assert a.ping("localhost").from_node == "a"
    assert [h.from_node for h in a.traceroute("a")] == ["a"]


def test_ping_unknown_node_and_traceroute_error(make_node):
    a, b = line(make_node, "a", "b")
    wait_until(lambda: converged([a, b]))
    result = a.ping("nosuchnode")
    assert result.error == "no route to node" and result.from_node == "a"
    hops = a.traceroute("nosuchnode")
    assert [(h.from_node, h.error) for h in hops] == [("a", None), ("a", "no route to node")]


def test_hops_to_live_expiry_reports_the_expiring_node(make_node):
    nodes = line(make_node, "a", "b", "c")
    wait_until(lambda: converged(nodes))
    result = nodes[0].ping("c", hops_to_live=1)
    assert result.error == "message expired" and result.from_node == "b"


def test_service_unknown_is_reported_back(make_node):
    a, b = line(make_node, "a", "b")
    wait_until(lambda: converged([a, b]))
    with a.listen_packet("") as conn:
        conn.write_to(b"hello", "b", "nosvc")
        reply = conn.read_any(5)
    assert reply.problem == "service unknown" and reply.received_from == "b"


def test_datagrams_cross_the_mesh(make_node):
    nodes = line(make_node, "a", "b", "c")
    wait_until(lambda: converged(nodes))
    with nodes[2].listen_packet("echo") as server, nodes[0].listen_packet("") as client:
        client.write_to(b"x" * 5000, "c", "echo")
        payload, node, service = server.read_from(5)
        assert (payload, node, service) == (b"x" * 5000, "a", client.service)


def test_link_loss_removes_routes(make_node):
    a, b, c = make_node("a"), make_node("b"), make_node("c")
    link(a, b)
    back_b, _ = link(b, c)
    wait_until(lambda: converged([a, b, c]))
    back_b.stop()
    wait_until(lambda: "c" not in a.routes() and "c" not in b.routes())
    assert a.ping("c").error == "no route to node"


def test_equal_cost_ring_routes_both_ways(make_node):
    nodes = [make_node(n) for n in "abcd"]
    for i in range(4):
        link(nodes[i], nodes[(i + 1) % 4])
    wait_until(lambda: converged(nodes))
    assert nodes[0].routes()["b"] == "b" and nodes[0].routes()["d"] == "d"
    assert nodes[0].routes()["c"] in ("b", "d")
    assert nodes[0].path_cost("c") == 2.0


def test_costs_steer_routes(make_node):
    a, b, c = make_node("a"), make_node("b"), make_node("c")
    link(a, b, BackendInfo(cost=5.0), BackendInfo(cost=5.0))
    link(b, c)
    link(a, c)
    wait_until(lambda: a.routes().get("b") == "c")
    assert a.path_cost("b") == 2.0


def test_allowed_peers_rejects(make_node, caplog):
    a, b = make_node("a"), make_node("b")
    caplog.set_level(logging.INFO, logger="receptor")
    link(a, b, BackendInfo(allowed_peers=("x",)), BackendInfo())
    wait_until(lambda: "because it is not in the allowed peers list" in caplog.text)
    assert "a: rejected connection with node b" in caplog.text
    wait_until(lambda: "b" not in a.routes() and not a.status()["Connections"])


def test_empty_allowed_peers_list_rejects_everyone(make_node, caplog):
    a, b = make_node("a"), make_node("b")
    link(a, b, BackendInfo(allowed_peers=()), BackendInfo())
    wait_until(lambda: "not in the allowed peers list" in caplog.text)


def test_cost_disagreement_rejects(make_node, caplog):
    a, b = make_node("a"), make_node("b")
    link(a, b, BackendInfo(cost=2.0), BackendInfo(cost=1.0))
    wait_until(lambda: "because we disagree about the connection cost" in caplog.text)


def test_node_cost_override_agrees(make_node):
    a, b = make_node("a"), make_node("b")
    link(a, b, BackendInfo(cost=1.0, node_cost={"b": 3.0}), BackendInfo(cost=3.0))
    wait_until(lambda: converged([a, b]))
    assert a.status()["Connections"] == [{"NodeID": "b", "Cost": 3.0}]


def test_own_node_id_is_rejected(make_node, caplog):
    a, a2 = make_node("a"), make_node("a")
    link(a, a2)
    wait_until(lambda: "because it tried to connect using our own node ID" in caplog.text)


def test_second_connection_with_same_node_id_is_rejected(make_node, caplog):
    a, b, b2 = make_node("a"), make_node("b"), make_node("b")
    link(a, b)
    wait_until(lambda: converged([a, b]))
    link(a, b2)
    wait_until(
        lambda: "because it connected using a node ID we are already connected to" in caplog.text
    )
    assert a.routes() == {"b": "b"}
    assert a.ping("b").error is None


def test_duplicate_node_id_newer_process_shuts_down(make_node, caplog):
    older = make_node("dup")
    hub_a, hub_m = make_node("A"), make_node("M")
    link(older, hub_a)
    link(hub_a, hub_m)
    wait_until(lambda: converged([older, hub_a, hub_m]))
    newer = make_node("dup")
    # Epochs are seconds << 24 plus a random part: within one second either may be larger.
    newer.epoch = older.epoch + 1
    link(newer, hub_m)
    assert newer.wait(10), "the newer duplicate should shut itself down"
    assert not older.done
    assert "We are a duplicate node with ID dup" in caplog.text
    assert "Duplicate node ID dup detected via A" in caplog.text


def test_firewall_drop_and_reject(make_node):
    rules = parse_rules(
        [
            {"action": "drop", "tonode": "c", "toservice": "ping"},
            {"action": "reject", "tonode": "/(?i)D.*/"},
        ]
    )
    a = make_node("a")
    b = make_node("b", firewall_rules=rules)
    c, d = make_node("c"), make_node("d")
    link(a, b)
    link(b, c)
    link(b, d)
    wait_until(lambda: converged([a, b, c, d]))
    # Routing updates are never filtered; data is.
    assert a.ping("b").error is None
    assert a.ping("d").error == "blocked by firewall"
    assert a.ping("d").from_node == "b"


def test_firewall_drop_is_silent(make_node, monkeypatch):
    from receptor.netceptor import _node

    monkeypatch.setattr(_node, "PING_TIMEOUT", 0.5)
    rules = parse_rules([{"action": "drop", "toservice": "ping"}])
    a, b = make_node("a"), make_node("b", firewall_rules=rules)
    link(a, b)
    wait_until(lambda: converged([a, b]))
    assert a.ping("b").error == "timeout"


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"action": "allow"}, "error in rule 0: unknown action: allow"),
        (
            {"action": "accept", "fromnode": 5},
            "error in rule 0: invalid firewall rule. fromnode must be a string",
        ),
        (
            {"action": "accept", "fromhost": "x"},
            "error in rule 0: invalid filewall rule. unknown key: fromhost",
        ),
        ({"action": "drop", "tonode": "/[/"}, "error in rule 0: invalid regular expression /[/"),
        ("drop", "error in rule 0: invalid firewall rule. rule must be a mapping"),
    ],
)
def test_firewall_rule_errors(rule, message):
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.").replace("[", r"\[")):
        parse_rules([rule])


def _established_pair(make_node):
    """Node a, and a raw in-memory peer that has introduced itself as 'raw'."""
    a = make_node("a")
    ours, theirs = session_pair("a", "raw")
    a.add_backend(MemoryBackend(ours), BackendInfo())
    update = RoutingUpdate("raw", "abcdefgh", 1 << 60, 1, {}, "raw").encode()
    theirs.send(update)
    wait_until(lambda: "raw" in {c["NodeID"] for c in a.status()["Connections"]})
    established = RoutingUpdate("raw", "abcdefgi", 1 << 60, 2, {"a": 1.0}, "raw").encode()
    theirs.send(established)
    wait_until(lambda: a.routes().get("raw") == "raw")
    return a, theirs


GARBAGE = [
    b"",
    b"\x00",
    b"\x00" * 35,
    b"\x00\x1e" + b"\x00" * 34 + b"payload",  # unknown hashes
    b"\x01",
    b"\x01{",
    b"\x01[]",
    b'\x01{"NodeID":5}',
    b'\x01{"NodeID":"x","UpdateEpoch":-1}',
    b'\x01{"NodeID":"x","UpdateEpoch":1.5}',
    b'\x01{"NodeID":"x","UpdateSequence":18446744073709551616}',
    b'\x01{"NodeID":"x","Connections":{"a":"cheap"}}',
    b'\x01{"NodeID":"x","Connections":{"a":1e999}}',
    b'\x01{"NodeID":"x","Connections":[1,2]}',
    b"\x01" + b"[" * 5000,
    b"\x01\xff\xfe garbage",
    b"\x02",
    b'\x02{"NodeID":"x","Time":"yesterday"}',
    b'\x02{"NodeID":"x","Tags":{"a":1}}',
    b'\x02{"NodeID":"x","ConnType":300}',
    b"\x07unknown type",
    b"\xff" * 65535,
]


def test_garbage_from_an_established_peer_is_logged_and_survived(make_node, caplog):
    a, raw = _established_pair(make_node)
    for message in GARBAGE:
        raw.send(message)
    # The link is still up and the node still answers a ping over it.
    ping = codec.encode_data(30, node_hash("raw"), node_hash("a"), "pinger", "ping", b"")
    raw.send(ping)
    wait_until(lambda: any(m[:1] == b"\x00" for m in raw.peer.sent))
    reply = next(m for m in raw.peer.sent if m[:1] == b"\x00")
    _, frm, to, fsvc, tsvc, _ = codec.decode_data(reply)
    assert (frm, to, fsvc, tsvc) == (node_hash("a"), node_hash("raw"), "ping", "pinger")
    assert "Error unpacking routing update" in caplog.text
    assert "Unknown message type" in caplog.text
    assert "zero-length message" in caplog.text
    assert "hash not found" in caplog.text
    assert a.routes().get("raw") == "raw"


def test_forwarded_frames_only_change_the_hops_byte(make_node):
    a, raw = _established_pair(make_node)
    b = make_node("b")
    link(a, b)
    wait_until(lambda: a.routes().get("b") == "b")
    # b learns raw's name only from a routing update raw originates (wire.md §4.2).
    raw.send(RoutingUpdate("raw", "abcdefgj", 1 << 60, 3, {"a": 1.0}, "raw").encode())
    wait_until(lambda: b.routes().get("raw") == "a")
    with b.listen_packet("sink") as sink:
        frame = codec.encode_data(7, node_hash("raw"), node_hash("b"), "src", "sink", b"data")
        frame = frame[:2] + b"\xab\xcd" + frame[4:]  # reserved bytes pass through untouched
        raw.send(frame)
        assert sink.read_from(5) == (b"data", "raw", "src")
    # b also saw the exact bytes a forwarded, with hops 6.
    sent_by_a = [m for m in a._connections["b"].session.sent if m[:1] == b"\x00"]
    assert sent_by_a[-1] == frame[:1] + b"\x06" + frame[2:]


def test_silent_peer_is_timed_out(make_node, caplog):
    a = make_node("a", idle_timeout=0.5)
    ours, theirs = session_pair("a", "raw")
    a.add_backend(MemoryBackend(ours), BackendInfo())
    theirs.send(RoutingUpdate("raw", "abcdefgh", 1, 1, {}, "raw").encode())
    wait_until(lambda: "Timing out connection raw" in caplog.text, timeout=5)
    wait_until(lambda: not a.status()["Connections"])


def test_routing_update_json_matches_go(make_node):
    update = RoutingUpdate(
        "foo", "Ab3xQ9zK", 29021228238034567, 12, {"baz": 2.5, "bar": 1.0}, "foo"
    )
    assert update.encode() == (
        b'\x01{"NodeID":"foo","UpdateID":"Ab3xQ9zK","UpdateEpoch":29021228238034567,'
        b'"UpdateSequence":12,"Connections":{"bar":1,"baz":2.5},"ForwardingNode":"foo",'
        b'"SuspectedDuplicate":0}'
    )
    decoded = RoutingUpdate.decode(update.encode()[1:])
    assert decoded == update
    # Go matches keys case-insensitively and ignores unknown ones.
    loose = json.dumps({"nodeid": "x", "UPDATEEPOCH": 5, "Extra": [1]}).encode()
    assert RoutingUpdate.decode(loose).epoch == 5


def _random_messages(count: int, seed: int) -> list[bytes]:
    """Random messages biased towards valid type bytes and plausible lengths."""
    import random

    rng = random.Random(seed)
    messages = []
    for _ in range(count):
        kind = rng.choice([0, 0, 1, 1, 2, 3, rng.randrange(256)])
        length = rng.choice([0, 1, 35, 36, 37, rng.randrange(2000), rng.randrange(65535)])
        body = bytes(rng.randrange(256) for _ in range(min(length, 300)))
        body += bytes(max(0, length - 300))
        if kind in (1, 2) and rng.random() < 0.5:
            obj = {
                rng.choice(
                    ["NodeID", "nodeid", "Connections", "UpdateEpoch", "Time", "Tags"]
                ): rng.choice([None, 1, -1, 1.5, 2**70, "x", [], {}, {"a": "b"}, {"a": 1e308}])
                for _ in range(rng.randrange(4))
            }
            if kind == 1:
                # A wrong forwarding node is a protocol violation that (rightly) ends the link.
                obj["ForwardingNode"] = "raw"
            body = json.dumps(obj).encode()
        if kind == 3 and rng.random() < 0.5:
            continue  # a reject would (rightly) end the link
        messages.append(bytes([kind]) + body if length else b"")
    return messages


def test_random_messages_never_take_the_node_down(make_node):
    a, raw = _established_pair(make_node)
    for message in _random_messages(3000, seed=2026):
        if message[:1] != b"\x03":
            raw.send(message)
    ping = codec.encode_data(30, node_hash("raw"), node_hash("a"), "after", "ping", b"")
    raw.send(ping)
    wait_until(
        lambda: any(m[:1] == b"\x00" and m[28:33] == b"after" for m in raw.peer.sent),
        timeout=20,
    )
    assert a.routes().get("raw") == "raw"
    assert not a.done


def test_peer_without_a_node_id_is_rejected(make_node, caplog):
    a = make_node("a")
    ours, theirs = session_pair("a", "anonymous")
    a.add_backend(MemoryBackend(ours), BackendInfo())
    theirs.send(b'\x01{"NodeID":"","UpdateID":"x","Connections":{}}')
    wait_until(lambda: "because it did not send a node ID" in caplog.text)
    wait_until(lambda: codec.REJECT_MESSAGE in ours.sent)
    assert not a.status()["Connections"]
