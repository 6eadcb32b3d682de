"""Remote work units between real daemons (work.md §6): submit on one node, run on another.

The submitting node talks to the target's mesh ``control`` service with upstream's control
protocol; the local ``remote`` unit mirrors the target's status and output. These tests run
two- and three-node lines over TCP on 127.0.0.1 and check the mirrored results byte for byte,
cancel and release in both states, ttl, restarts of either node and of the middle node,
signed work, and the upstream receptorctl.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from .harness import Mesh, ReceptorNode, free_port, listener, peer, wait_until
from .test_work import _rsa_pair, release_all, results, status, unit_dir, wait_done

pytestmark = pytest.mark.integration

MIB = 1024 * 1024

TARGET_TYPES: list[dict[str, Any]] = [
    {"worktype": "cat", "command": "cat"},
    {"worktype": "echo", "command": "echo", "params": "hello", "allowruntimeparams": True},
    {"worktype": "sleep", "command": "sleep", "params": "30"},
    {"worktype": "sh", "command": "sh", "allowruntimeparams": True},
]


def _work(*types: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"work-command": dict(t)} for t in types]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def submit_remote(
    node: ReceptorNode, target: str, work_type: str, payload: bytes = b"", **params: str
) -> tuple[str, str]:
    """Submit to ``target``; (unit ID, result)."""
    request = {"command": "work", "subcommand": "submit", "node": target, "worktype": work_type}
    request.update(params)
    reply = node.session(json.dumps(request).encode() + b"\n" + payload, timeout=60).decode()
    lines = reply.split("\n")
    assert lines[1].startswith("Work unit created with ID "), reply
    result = json.loads(lines[2])
    return result["unitid"], result["result"]


def remote_id(node: ReceptorNode, unit_id: str) -> str:
    return status(node, unit_id)["ExtraData"]["RemoteUnitID"]


@pytest.fixture
def line2(mesh: Mesh):
    """n1 (submitter) — n2 (target with work types)."""
    n1 = mesh.node("n1", listener(free_port()))  # a fixed port: n1 is restarted in tests
    n2 = mesh.node("n2", peer(n1.port()), *_work(*TARGET_TYPES))
    wait_until(lambda: "n2" in n1.routes() and "n1" in n2.routes())
    try:
        yield n1, n2
    finally:
        release_all(n1)
        release_all(n2)


def test_remote_echo_mirrors_status_and_output(line2):
    n1, n2 = line2
    unit_id, result = submit_remote(n1, "n2", "echo", params="there")
    assert result == "Job Started"
    final = wait_done(n1, unit_id)
    assert (final["StateName"], final["Detail"], final["StdoutSize"]) == (
        "Succeeded",
        "exit status 0",
        len(b"hello there\n"),
    )
    assert final["WorkType"] == "remote"
    extra = final["ExtraData"]
    assert extra["RemoteNode"] == "n2" and extra["RemoteWorkType"] == "echo"
    assert extra["RemoteStarted"] is True and extra["RemoteParams"] == {"params": "there"}
    assert extra["Expiration"] == "0001-01-01T00:00:00Z"
    assert results(n1, unit_id) == b"hello there\n"
    # The target holds an ordinary local unit of the same outcome.
    target = status(n2, extra["RemoteUnitID"])
    assert (target["WorkType"], target["State"]) == ("echo", 2)
    assert (unit_dir(n1, unit_id) / "stdout").read_bytes() == b"hello there\n"


def test_status_requests_reuse_control_sessions_with_the_target(line2):
    """Status requests go over sessions kept open to the target; each unit costs the
    target only its submit, its results stream and its release as new sessions."""
    n1, n2 = line2
    connected = "Client connected to control service from n1:"
    before = n2.log.count(connected)
    units = 6
    for index in range(units):
        unit_id, _ = submit_remote(n1, "n2", "echo", params=f"unit {index}")
        wait_done(n1, unit_id)
        assert results(n1, unit_id) == f"hello unit {index}\n".encode()
        assert n1.command(f"work release {unit_id}") == {"released": unit_id}
    wait_until(lambda: n2.command("work list") == {})
    sessions = n2.log.count(connected) - before
    # Without reuse: submit, status, results and release each open one (4 or more per unit).
    assert units * 3 <= sessions <= units * 3 + 2, sessions


def test_remote_unknown_work_type_fails_the_unit(line2):
    n1, _ = line2
    request = b'{"command":"work","subcommand":"submit","node":"n2","worktype":"nosuch"}\n'
    reply = n1.session(request).decode()
    expected = "ERROR: could not parse response: ERROR: unknown work type nosuch"
    assert reply.rstrip("\n").endswith(expected), reply
    unit_id = reply.split("with ID ")[1].split(".")[0]
    failed = status(n1, unit_id)
    assert failed["StateName"] == "Failed"
    assert failed["Detail"] == f"Error starting worker: {expected[len('ERROR: ') :]}"


def test_secrets_need_tls_and_tls_names_must_exist(line2):
    n1, _ = line2
    base = {"command": "work", "subcommand": "submit", "node": "n2", "worktype": "echo"}
    secret = n1.session(json.dumps({**base, "secret_pw": "x"}).encode() + b"\n").decode()
    assert secret.endswith("ERROR: cannot send secrets over a non-TLS connection\n"), secret
    unknown = n1.session(json.dumps({**base, "tlsclient": "nope"}).encode() + b"\n").decode()
    assert unknown.endswith("ERROR: unknown TLS config nope\n"), unknown
    bad_ttl = n1.session(json.dumps({**base, "ttl": "bogus"}).encode() + b"\n").decode()
    assert bad_ttl.endswith('ERROR: time: invalid duration "bogus"\n'), bad_ttl
    # Unlike upstream, none of these leaves a unit behind.
    assert n1.command("work list") == {}


def test_50_mib_two_hops_byte_exact_via_results_and_receptorctl(mesh, tmp_path):
    n1 = mesh.node("n1", listener())
    n2 = mesh.node("n2", listener(), peer(n1.port()))
    n3 = mesh.node("n3", peer(n2.port()), *_work(*TARGET_TYPES))
    wait_until(lambda: "n3" in n1.routes() and "n1" in n3.routes())
    try:
        payload = os.urandom(50 * MIB)
        unit_id, result = submit_remote(n1, "n3", "cat", payload)
        assert result == "Job Started"
        assert _sha(results(n1, unit_id)) == _sha(payload)
        assert wait_done(n1, unit_id)["StdoutSize"] == len(payload)
        # Resume: any offset gives exactly the tail.
        for start in (1, 12345, len(payload) - 1, len(payload)):
            assert _sha(results(n1, unit_id, start)) == _sha(payload[start:])
        source = tmp_path / "payload"
        source.write_bytes(payload)
        done = subprocess.run(
            [
                *(sys.executable, "-m", "receptorctl", "--socket", str(n1.workdir / "n1.sock")),
                *("work", "submit", "--node", "n3", "cat", "-p", str(source), "-f", "--rm"),
            ],
            capture_output=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert _sha(done.stdout[: len(payload)]) == _sha(payload)
    finally:
        release_all(n1)
        release_all(n3)


def test_unreachable_node_then_cancel_and_release(line2):
    """Golden remote_unreachable: Job Submitted, Pending, Locally Cancelled, released."""
    n1, _ = line2
    unit_id, result = submit_remote(n1, "far", "echo")
    assert result == "Job Submitted"
    pending = status(n1, unit_id)
    assert (pending["State"], pending["Detail"]) == (0, "Starting Worker")
    assert pending["ExtraData"]["RemoteUnitID"] == ""
    assert n1.command(f"work cancel {unit_id}") == {"cancelled": unit_id}
    cancelled = status(n1, unit_id)
    assert (cancelled["State"], cancelled["Detail"]) == (3, "Locally Cancelled")
    assert cancelled["ExtraData"]["LocalCancelled"] is True
    assert n1.command(f"work release {unit_id}") == {"released": unit_id}
    assert not unit_dir(n1, unit_id).exists()


def test_ttl_expires_a_unit_that_never_started(line2):
    n1, _ = line2
    unit_id, result = submit_remote(n1, "far", "echo", ttl="1s")
    assert result == "Job Submitted"
    assert status(n1, unit_id)["ExtraData"]["Expiration"] != "0001-01-01T00:00:00Z"
    expired = wait_done(n1, unit_id, timeout=15)
    assert expired["State"] == 3
    assert expired["Detail"].startswith("Work unit expired on ")


def test_unit_starts_when_the_target_joins_later(mesh):
    n1 = mesh.node("n1", listener())
    unit_id, result = submit_remote(n1, "n2", "echo", params="late")
    assert result == "Job Submitted"
    mesh.node("n2", peer(n1.port()), *_work(*TARGET_TYPES))
    try:
        final = wait_done(n1, unit_id, timeout=60)
        assert final["StateName"] == "Succeeded"
        assert results(n1, unit_id) == b"hello late\n"
    finally:
        release_all(n1)


def test_cancel_and_release_a_running_remote_unit(line2):
    n1, n2 = line2
    unit_id, _ = submit_remote(n1, "n2", "sleep")
    wait_until(lambda: status(n1, unit_id)["StateName"] == "Running")
    target = remote_id(n1, unit_id)
    assert n1.command(f"work cancel {unit_id}") == {"cancelled": unit_id}
    assert status(n2, target)["StateName"] == "Canceled"
    mirrored = wait_done(n1, unit_id)
    assert mirrored["StateName"] == "Canceled"
    assert mirrored["ExtraData"]["LocalCancelled"] is True
    # Results of a Canceled unit end here (upstream would stream forever).
    assert results(n1, unit_id) == b""
    assert n1.command(f"work release {unit_id}") == {"released": unit_id}
    assert not unit_dir(n1, unit_id).exists()
    assert n2.command("work list") == {}


def test_release_when_the_target_forgot_the_unit(line2):
    n1, n2 = line2
    unit_id, _ = submit_remote(n1, "n2", "echo")
    wait_done(n1, unit_id)
    assert n2.command(f"work release {remote_id(n1, unit_id)}")
    assert n1.command(f"work release {unit_id}") == {"released": unit_id}
    assert n1.command("work list") == {}


def test_release_pending_while_the_target_is_down(line2):
    n1, n2 = line2
    unit_id, _ = submit_remote(n1, "n2", "echo")
    wait_done(n1, unit_id)
    target = remote_id(n1, unit_id)
    n2.kill()
    wait_until(lambda: "n2" not in n1.routes(), timeout=30)
    assert n1.command(f"work release {unit_id}") == {"release pending": unit_id}
    assert status(n1, unit_id)["ExtraData"]["LocalReleased"] is True
    n2.start()
    # Once n2 is back the release goes through on both sides.
    wait_until(lambda: n1.command("work list") == {}, timeout=60)
    wait_until(lambda: target not in n2.command("work list"), timeout=30)


def test_force_release_while_the_target_is_down(line2):
    n1, n2 = line2
    unit_id, _ = submit_remote(n1, "n2", "echo")
    wait_done(n1, unit_id)
    n2.kill()
    wait_until(lambda: "n2" not in n1.routes(), timeout=30)
    assert n1.command(f"work force-release {unit_id}") == {"released": unit_id}
    assert n1.command("work list") == {}
    n2.start()


def test_remote_unit_survives_restarts_of_either_node(line2):
    n1, n2 = line2
    script = "for i in $(seq 1 40); do echo line-$i; sleep 0.1; done"
    expected = b"".join(b"line-%d\n" % i for i in range(1, 41))
    unit_id, _ = submit_remote(n1, "n2", "sh", params=f'-c "{script}"')
    wait_until(lambda: status(n1, unit_id)["StdoutSize"] > 0)
    n1.kill()  # the submitter dies mid-unit
    n1.start()
    wait_until(lambda: "n2" in n1.routes())
    n2.kill()  # then the target (its command runner lives on)
    n2.start()
    final = wait_done(n1, unit_id, timeout=60)
    assert final["StateName"] == "Succeeded", final
    assert results(n1, unit_id) == expected


def test_middle_node_killed_during_a_remote_unit(mesh):
    n1 = mesh.node("n1", listener())
    n2 = mesh.node("n2", listener(free_port()), peer(n1.port()))
    n3 = mesh.node("n3", peer(n2.port()), *_work(*TARGET_TYPES))
    wait_until(lambda: "n3" in n1.routes())
    try:
        script = "for i in $(seq 1 30); do echo step-$i; sleep 0.1; done"
        unit_id, _ = submit_remote(n1, "n3", "sh", params=f'-c "{script}"')
        wait_until(lambda: status(n1, unit_id)["StdoutSize"] > 0)
        n2.kill()
        wait_until(lambda: "n3" not in n1.routes(), timeout=30)
        time.sleep(1.0)
        n2.start()
        final = wait_done(n1, unit_id, timeout=90)
        assert final["StateName"] == "Succeeded"
        assert results(n1, unit_id) == b"".join(b"step-%d\n" % i for i in range(1, 31))
    finally:
        release_all(n1)
        release_all(n3)


def test_upstream_receptorctl_remote_work(upstream_receptorctl, line2, tmp_path):
    n1, n2 = line2
    exe = str(upstream_receptorctl)
    sock = str(n1.workdir / "n1.sock")
    payload = os.urandom(3 * MIB)
    source = tmp_path / "payload"
    source.write_bytes(payload)

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([exe, "--socket", sock, *args], capture_output=True, timeout=120)

    done = run("work", "submit", "--node", "n2", "cat", "-p", str(source), "-f")
    assert done.returncode == 0, done.stderr
    assert _sha(done.stdout) == _sha(payload)
    (unit_id,) = json.loads(run("work", "list").stdout)
    assert _sha(run("work", "results", unit_id).stdout) == _sha(payload)
    sleeper = run("work", "submit", "--node", "n2", "sleep", "-n")
    assert sleeper.returncode == 0, sleeper.stderr
    sleeper_id = next(u for u in json.loads(run("work", "list").stdout) if u != unit_id)
    wait_until(lambda: status(n1, sleeper_id)["StateName"] == "Running")
    assert run("work", "cancel", sleeper_id).returncode == 0
    released = run("work", "release", unit_id, sleeper_id)
    assert released.returncode == 0, released.stderr
    assert n1.command("work list") == {}
    wait_until(lambda: n2.command("work list") == {})


# ---------------------------------------------------------------------- signed work


def test_signed_remote_work(mesh):
    _, private, public = _rsa_pair(mesh.workdir, "signing")
    n1 = mesh.node("n1", listener(), {"work-signing": {"privatekey": str(private)}})
    n2 = mesh.node(
        "n2",
        peer(n1.port()),
        {"work-verification": {"publickey": str(public)}},
        {
            "work-command": {
                "worktype": "secure",
                "command": "echo",
                "verifysignature": True,
                "allowruntimeparams": True,
            }
        },
    )
    wait_until(lambda: "n2" in n1.routes())
    try:
        unit_id, result = submit_remote(n1, "n2", "secure", params="signed", signwork="true")
        assert result == "Job Started"
        assert status(n1, unit_id)["ExtraData"]["SignWork"] is True
        assert wait_done(n1, unit_id)["StateName"] == "Succeeded"
        assert results(n1, unit_id) == b"signed\n"
        # Cancel and release of a signed unit are signed too.
        assert n1.command(f"work release {unit_id}") == {"released": unit_id}
        request = b'{"command":"work","subcommand":"submit","node":"n2","worktype":"secure"}\n'
        unsigned = n1.session(request).decode()
        assert unsigned.rstrip("\n").endswith(
            "ERROR: could not parse response: ERROR: could not verify signature: signature is empty"
        ), unsigned
    finally:
        release_all(n1)
        release_all(n2)
