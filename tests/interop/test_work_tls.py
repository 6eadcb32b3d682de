"""Remote work between a Go node and ours, both ways, with mutual TLS and signed work.

Two meshes of two nodes each, one per direction of submission:

* ``to_go``: our ``p1`` submits to the Go node ``g1``;
* ``to_py``: the Go node ``g2`` submits to our ``p2``.

In both the link is TLS with client certificates (the executor's tcp-listener has a
tls-server with ``requireclientcert`` and ``clientcas``; the submitter's tcp-peer a
tls-client with its certificate), the executor's control service has the same tls-server
on its mesh service (so the submitter must dial it with ``tlsclient`` and present a
certificate naming its node ID), the submitter signs its work (``work-signing``) and the
executor's work types verify it (``work-verification``, ``verifysignature: true``). The
certificates come from our ``receptor --cert-*``; the work-signing keys from openssl.

Both halves run the same tests, through our ``receptorctl`` on the submitter's Unix socket
(the Go node's in ``to_py``) or raw control sessions: ``connect`` to the executor's TLS
control service, refusals of bad client certificates, signed remote work whose output is
streamed back, an unsigned submission refused by the verifying executor, and remote work
over a TLS connection that one side refuses (which must fail the unit as upstream does).
The ``to_py`` half needs client-certificate support on our QUIC mesh services (commit
3b4d9b6; before it our daemon refused such a control service at start-up).
"""

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..integration.harness import OUR_DAEMON, ReceptorNode, listener, peer, wait_until
from .harness import (
    LONG,
    PKI,
    InteropMesh,
    converged,
    is_go,
    make_pki,
    ok,
    openssl_rsa_pair,
    receptorctl,
    sha,
)

pytestmark = pytest.mark.go_interop

MIB = 1024 * 1024


@dataclass
class Pair:
    submitter: ReceptorNode
    executor: ReceptorNode


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    nodes = ["p1", "g1", "p2", "g2", "x9"]
    return make_pki(tmp_path_factory.mktemp("pki"), list(OUR_DAEMON), nodes)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """Another CA, with certificates for the submitters."""
    return make_pki(tmp_path_factory.mktemp("foreign"), list(OUR_DAEMON), ["p1", "g2"])


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return openssl_rsa_pair(tmp_path_factory.mktemp("keys"), "signing")


def executor_items(mesh: InteropMesh, pki: PKI, name: str, public: Path) -> list[Any]:
    return [
        {"control-service": {"filename": str(mesh.workdir / f"{name}.sock"), "tls": "srv"}},
        pki.mutual_server(name, "srv"),
        listener(tls="srv"),
        {"work-verification": {"publickey": str(public)}},
        {"work-command": {"worktype": "cat", "command": "cat", "verifysignature": True}},
        {
            "work-command": {
                "worktype": "echo",
                "command": "echo",
                "allowruntimeparams": True,
                "verifysignature": True,
            }
        },
    ]


def submitter_items(pki: PKI, foreign: PKI, name: str, port: int, private: Path) -> list[Any]:
    """tls-clients: ``cli`` with the node's certificate; ``wrongid`` with the certificate of
    another node (x9) of the same CA; ``foreignca`` with a certificate from another CA;
    ``untrust`` with the node's certificate, but trusting only the other CA."""
    wrongid = pki.tls_client("x9", "wrongid", skipreceptornamescheck=True)
    foreignca = foreign.tls_client(name, "foreignca")
    foreignca["tls-client"]["rootcas"] = pki.ca
    untrust = pki.tls_client(name, "untrust")
    untrust["tls-client"]["rootcas"] = foreign.ca
    return [
        pki.tls_client(name, "cli"),
        wrongid,
        foreignca,
        untrust,
        peer(port, tls="cli"),
        # tokenexpiration: without it upstream 1.4.9 crashes at start-up (config.md §3.10).
        {"work-signing": {"privatekey": str(private), "tokenexpiration": "30m"}},
    ]


def start_pair(
    go: Path, pki: PKI, foreign: PKI, signing: tuple[Path, Path], submitter: str, executor: str
) -> tuple[InteropMesh, Pair]:
    private, public = signing
    mesh = InteropMesh(go)
    try:
        start = {True: mesh.gonode, False: mesh.py}
        target = start[executor.startswith("g")](
            executor, *executor_items(mesh, pki, executor, public), control=False
        )
        source = start[submitter.startswith("g")](
            submitter, *submitter_items(pki, foreign, submitter, target.port(), private)
        )
        converged([source, target])
    except BaseException:
        mesh.close()
        raise
    return mesh, Pair(source, target)


def release_everything(*nodes: ReceptorNode) -> None:
    for node in nodes:
        if node.process is None or node.process.poll() is not None:
            continue
        listing = node.command("work list")
        if isinstance(listing, dict):
            for unit_id in listing:
                node.command(f"work force-release {unit_id}")


@pytest.fixture(scope="module")
def to_go(go: Path, pki: PKI, foreign: PKI, signing: tuple[Path, Path]) -> Iterator[Pair]:
    mesh, pair = start_pair(go, pki, foreign, signing, "p1", "g1")
    try:
        yield pair
    finally:
        release_everything(pair.submitter, pair.executor)
        mesh.close()


@pytest.fixture(scope="module")
def to_py(go: Path, pki: PKI, foreign: PKI, signing: tuple[Path, Path]) -> Iterator[Pair]:
    mesh, pair = start_pair(go, pki, foreign, signing, "g2", "p2")
    try:
        yield pair
    finally:
        release_everything(pair.submitter, pair.executor)
        mesh.close()


@pytest.fixture(params=["to_go", "to_py"])
def pair(request: pytest.FixtureRequest) -> Pair:
    return request.getfixturevalue(request.param)


# ------------------------------------------------------------------------------ the link


def test_links_are_mutual_tls(pair):
    """Both nodes see each other over the TLS link, and ping across it."""
    source, target = pair.submitter, pair.executor
    assert source.command(f"ping {target.node_id}")["Success"] is True
    assert target.command(f"ping {source.node_id}")["Success"] is True
    for node, other in ((source, target), (target, source)):
        connections = node.status()["Connections"]
        assert [c["NodeID"] for c in connections] == [other.node_id]


# ------------------------------------------------------------------------------ connect


def connect(node: ReceptorNode, target: str, tls: str, stdin: bytes) -> Any:
    return receptorctl(node, "connect", "--tls-client", tls, target, "control", stdin=stdin)


def test_connect_to_the_tls_control_service_with_a_client_certificate(pair):
    source, target = pair.submitter, pair.executor
    out = ok(connect(source, target.node_id, "cli", b"status\n")).decode()
    greeting, _, body = out.partition("\n")
    assert greeting == f"Receptor Control, node {target.node_id}"
    assert json.loads(body)["NodeID"] == target.node_id


@pytest.mark.parametrize("tls", ["wrongid", "foreignca", ""])
def test_tls_control_service_refuses_a_bad_client_certificate(pair, tls):
    """A certificate naming another node, or from a CA the executor does not trust, is
    refused; so is a dialer without TLS. Dialers report that differently (ours as an
    ``ERROR:``; Go's may answer ``Connecting`` and then end the session): either way no
    session of the executor's control service is reached."""
    source, target = pair.submitter, pair.executor
    request = f"connect {target.node_id} control {tls}".rstrip() + "\nstatus\n"
    reply = source.session(request.encode(), timeout=LONG).decode()
    assert reply.startswith(f"Receptor Control, node {source.node_id}\n"), reply
    assert f"Receptor Control, node {target.node_id}" not in reply, reply
    if not is_go(source):
        assert "\nERROR: " in reply, reply
    assert target.status()["NodeID"] == target.node_id


# ------------------------------------------------------------------------------ remote work


def submit(source: ReceptorNode, target: str, *args: str, stdin: bytes = b"") -> Any:
    return receptorctl(
        source,
        *("work", "submit", "--node", target, "--tls-client", "cli", "--signwork"),
        *args,
        stdin=stdin,
        timeout=2 * LONG,
    )


def test_signed_mtls_submit_follow_streams_results_back(pair, tmp_path):
    """``receptorctl work submit --node <other> --tls-client cli --signwork -f --rm`` on the
    submitter's socket: 2 MiB through ``cat`` come back byte for byte, and the unit is
    released on both nodes."""
    source, target = pair.submitter, pair.executor
    payload = os.urandom(2 * MIB)
    (tmp_path / "payload").write_bytes(payload)
    out = ok(submit(source, target.node_id, "cat", "-p", str(tmp_path / "payload"), "-f", "--rm"))
    assert sha(out[: len(payload)]) == sha(payload)
    # --rm: then the release, as ``(<unit ID>, released)``.
    assert re.fullmatch(rb"\(\w+, released\)\n", out[len(payload) :]), out[len(payload) :]
    wait_until(lambda: source.command("work list") == {}, timeout=LONG)
    wait_until(lambda: target.command("work list") == {}, timeout=LONG)


def test_signed_mtls_remote_unit_status_and_release(pair):
    source, target = pair.submitter, pair.executor
    done = submit(source, target.node_id, "echo", "-n", "hello", "from", source.node_id)
    out = ok(done).decode()
    match = re.search(r"Result: Job Started\nUnit ID: (\w+)", out)
    assert match, out
    unit_id = match.group(1)

    def finished() -> Any:
        status = source.command(f"work status {unit_id}")
        return status if status["State"] in (2, 3, 4) else None

    status = wait_until(finished, timeout=LONG)
    assert (status["StateName"], status["Detail"]) == ("Succeeded", "exit status 0"), status
    extra = status["ExtraData"]
    assert (extra["RemoteNode"], extra["RemoteWorkType"]) == (target.node_id, "echo")
    assert (extra["SignWork"], extra["TLSClient"]) == (True, "cli")
    expected = f"hello from {source.node_id}\n".encode()
    assert status["StdoutSize"] == len(expected)
    assert ok(receptorctl(source, "work", "results", unit_id)) == expected
    # The executor holds an ordinary local unit of the same outcome.
    remote = target.command(f"work status {extra['RemoteUnitID']}")
    assert (remote["WorkType"], remote["StateName"]) == ("echo", "Succeeded")
    assert ok(receptorctl(source, "work", "release", unit_id)).decode().strip()
    wait_until(lambda: source.command("work list") == {}, timeout=LONG)
    wait_until(lambda: target.command("work list") == {}, timeout=LONG)


def test_unsigned_work_is_refused_by_the_verifying_executor(pair):
    source, target = pair.submitter, pair.executor
    request = {
        "command": "work",
        "subcommand": "submit",
        "node": target.node_id,
        "worktype": "echo",
        "tlsclient": "cli",
    }
    reply = source.session(json.dumps(request).encode() + b"\n", timeout=LONG).decode()
    assert reply.rstrip("\n").endswith(
        "ERROR: could not parse response: ERROR: could not verify signature: signature is empty"
    ), reply
    release_everything(source)
    assert target.command("work list") == {}


@pytest.mark.parametrize("tls", ["wrongid", "foreignca", "untrust"])
def test_work_over_a_refused_tls_connection_fails_the_unit(pair, tls):
    """The executor's control service refuses the submitter's certificate (``wrongid``,
    ``foreignca``), or the submitter does not trust the executor's (``untrust``). As upstream
    does (work.md §6.2, §6.3), the submit answers ``Job Submitted`` (a connection-level
    failure) and the unit then fails with Detail ``TLS error connecting to remote service:
    CRYPTO_ERROR …``."""
    source, target = pair.submitter, pair.executor
    request = {
        "command": "work",
        "subcommand": "submit",
        "node": target.node_id,
        "worktype": "echo",
        "tlsclient": tls,
        "signwork": "true",
    }
    reply = source.session(json.dumps(request).encode() + b"\n", timeout=LONG).decode()
    match = re.search(r"with ID (\w+)\.", reply)
    assert match, reply
    unit_id = match.group(1)
    assert reply.endswith(f'{{"result":"Job Submitted","unitid":"{unit_id}"}}\n'), reply

    def failed() -> Any:
        status = source.command(f"work status {unit_id}")
        return status if status["State"] == 3 else None

    # Generous: the first attempt already fails, and the unit with it.
    status = wait_until(failed, timeout=LONG / 2)
    assert status["Detail"].startswith(
        "TLS error connecting to remote service: CRYPTO_ERROR 0x1"
    ), status
    assert status["ExtraData"]["RemoteStarted"] is False
    release_everything(source)
    assert target.command("work list") == {}
