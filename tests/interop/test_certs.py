"""Certificates made by either implementation, used by the other.

A CA and node certificates come from ``--cert-init`` / ``--cert-makereq`` /
``--cert-signreq`` of the Go binary, of ours, or of both (the CA from one, the requests from
the other). With them a line ``p1 <- g1 <- p2`` (``g1`` dials ``p1``, ``p2`` dials ``g1``)
runs with client certificates required on every link, and each node's control service
requires them on its mesh service too, so that both implementations check, in the other's
certificates, the chain, the clientAuth/serverAuth usages and the Receptor node-ID otherName.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from receptor.certificates import node_ids_from_certificate

from ..integration.harness import OUR_DAEMON, ReceptorNode, listener, peer
from .harness import LONG, PKI, InteropMesh, converged, is_go, make_pki, ok, receptorctl

pytestmark = pytest.mark.go_interop

NODES = ["p1", "g1", "p2"]
#: (CA made by, requests made by)
MAKERS = {
    "go": ("go", "go"),
    "ours": ("ours", "ours"),
    "go-ca-our-requests": ("go", "ours"),
    "our-ca-go-requests": ("ours", "go"),
}


def items(mesh: InteropMesh, pki: PKI, name: str) -> list[Any]:
    return [
        {"control-service": {"filename": str(mesh.workdir / f"{name}.sock"), "tls": "srv"}},
        pki.mutual_server(name, "srv"),
        pki.tls_client(name, "cli"),
    ]


@pytest.fixture(scope="module", params=list(MAKERS))
def line(
    request: pytest.FixtureRequest, go: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PKI, dict[str, ReceptorNode]]]:
    binaries = {"go": [str(go)], "ours": list(OUR_DAEMON)}
    ca_maker, req_maker = MAKERS[request.param]
    pki = make_pki(
        tmp_path_factory.mktemp(request.param),
        binaries[ca_maker],
        NODES,
        req_maker=binaries[req_maker],
        label=request.param,
    )
    mesh = InteropMesh(go)
    try:
        p1 = mesh.py("p1", *items(mesh, pki, "p1"), listener(tls="srv"), control=False)
        g1 = mesh.gonode(
            "g1",
            *items(mesh, pki, "g1"),
            listener(tls="srv"),
            peer(p1.port(), tls="cli"),
            control=False,
        )
        p2 = mesh.py("p2", *items(mesh, pki, "p2"), peer(g1.port(), tls="cli"), control=False)
        nodes = {"p1": p1, "g1": g1, "p2": p2}
        converged(list(nodes.values()))
        yield pki, nodes
    finally:
        mesh.close()


def test_the_certificates_carry_the_node_ids(line):
    pki, _ = line
    for name in NODES:
        cert = x509.load_pem_x509_certificate(Path(pki.cert(name)).read_bytes())
        assert node_ids_from_certificate(cert) == [name], pki.maker


def test_mutual_tls_links_converge_and_ping(line):
    _, nodes = line
    assert [c["NodeID"] for c in nodes["g1"].status()["Connections"]] in (
        ["p1", "p2"],
        ["p2", "p1"],
    )
    for source, target in (("p1", "p2"), ("p2", "p1"), ("g1", "p1"), ("g1", "p2")):
        reply = nodes[source].command(f"ping {target}")
        assert reply["Success"] is True and reply["From"] == target, (source, target, reply)


@pytest.mark.parametrize(("source", "target"), [("g1", "p1"), ("p2", "g1"), ("g1", "p2")])
def test_connect_to_a_tls_control_service_requiring_client_certificates(line, source, target):
    """``receptorctl connect --tls-client cli <target> control``: the dialer checks the
    target's node ID in its server certificate, the target the dialer's in its client
    certificate."""
    _, nodes = line
    done = receptorctl(
        nodes[source],
        *("connect", "--tls-client", "cli", target, "control"),
        stdin=b"status\n",
        timeout=LONG,
    )
    out = ok(done).decode()
    assert out.startswith(f"Receptor Control, node {target}\n"), out
    assert f'"NodeID":"{target}"' in out.replace(" ", ""), out
    assert is_go(nodes[source]) != is_go(nodes[target])
