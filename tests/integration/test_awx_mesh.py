"""An AWX-shaped mesh end to end: control — hop — execution, mutual TLS on every link.

Three of our daemons with AWX's configuration (tests/data/awx: the control node's receptor.conf
as AWX writes it, hop and execution as the receptor collection renders them for AWX's install
bundle), certificates from our ``receptor --cert-init/--cert-makereq/--cert-signreq`` (one CA,
one certificate per node carrying its node ID, used as server and client certificate), signed
work. The test plays AWX's part with our receptorctl library, the way
``awx/main/tasks/receptor.py`` does: ``ansible-runner transmit`` of a private data dir is the
payload of an ``ansible-runner`` unit on the execution node, and the unit's results are fed to
``ansible-runner process``. ansible-runner and ansible-core come from PyPI (the
``ansible_venv`` fixture); the execution node finds ``ansible-runner`` on its PATH.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import stat
import string
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from receptorctl import ReceptorControl, ReceptorControlError

from .conftest import ANSIBLE_RUNNER_VERSION
from .harness import Mesh, ReceptorNode, wait_until
from .test_work import _rsa_pair, release_all, status, wait_done

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "awx"
NODES = ("control", "hop", "execution")
#: Generous bounds for one playbook run or one cancel (no test takes near this long).
JOB_TIMEOUT = 120.0


@dataclass
class AWXMesh:
    workdir: Path
    control: ReceptorNode
    hop: ReceptorNode
    execution: ReceptorNode

    def receptorctl(self) -> ReceptorControl:
        """A session on the control node's socket, as AWX's ``get_receptor_ctl`` opens it."""
        return ReceptorControl(self.control.socket_path)


# ---------------------------------------------------------------------- the mesh


def _receptor(cwd: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "receptor", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)


def _make_node_cert(directory: Path, node_id: str, ca: Path) -> None:
    """``receptor.crt``/``receptor.key`` in ``directory`` for ``node_id`` (its node ID and
    127.0.0.1), signed by the CA ``ca``/``ca.crt`` and ``ca``/``ca.key``."""
    directory.mkdir(parents=True)
    _receptor(
        directory,
        "--cert-makereq",
        "bits=2048",
        f"commonname={node_id}",
        f"dnsname={node_id}",
        "ipaddress=127.0.0.1",
        f"nodeid={node_id}",
        "outreq=receptor.req",
        "outkey=receptor.key",
    )
    _receptor(
        directory,
        "--cert-signreq",
        "req=receptor.req",
        f"cacert={ca}.crt",
        f"cakey={ca}.key",
        "outcert=receptor.crt",
        "verify=yes",
    )


def _make_pki(workdir: Path) -> None:
    """One CA and one certificate per node, laid out as AWX's install bundle; and for the
    control node a second certificate from another CA."""
    for ca_dir, name in ((workdir / "tls" / "ca", "AWX Mesh CA"), (workdir / "other", "Other CA")):
        ca_dir.mkdir(parents=True)
        _receptor(
            ca_dir,
            "--cert-init",
            f"commonname={name}",
            "bits=2048",
            "outcert=mesh-CA.crt",
            "outkey=mesh-CA.key",
        )
    for node_id in NODES:
        _make_node_cert(workdir / node_id / "tls", node_id, workdir / "tls" / "ca" / "mesh-CA")
    _make_node_cert(workdir / "control" / "other-ca", "control", workdir / "other" / "mesh-CA")


def _make_signing_keys(workdir: Path) -> None:
    signing = workdir / "signing"
    signing.mkdir()
    _, private, public = _rsa_pair(signing, "work")
    private.rename(signing / "work-private-key.pem")
    public.rename(signing / "work-public-key.pem")


def _start(mesh: Mesh, node_id: str, **ports: int) -> ReceptorNode:
    """Start ``node_id`` with its AWX configuration file, filled in for this mesh."""
    template = string.Template((DATA / f"{node_id}.yml").read_text())
    node = ReceptorNode(mesh.workdir, node_id, [], [])
    node.config_path.write_text(template.substitute(workdir=mesh.workdir, **ports))
    mesh.nodes.append(node)
    return node.start()


def _control_ad(node: ReceptorNode, node_id: str) -> dict[str, Any] | None:
    for ad in node.status()["Advertisements"] or []:
        if ad["NodeID"] == node_id and ad["Service"] == "control":
            return ad
    return None


@pytest.fixture(scope="module")
def awx_mesh(ansible_venv: Path) -> Iterator[AWXMesh]:
    mesh = Mesh()
    try:
        with pytest.MonkeyPatch.context() as patch:
            # The work-command is plain `ansible-runner`, found on the execution node's PATH.
            patch.setenv("PATH", f"{ansible_venv}{os.pathsep}{os.environ.get('PATH', '')}")
            # What ansible leaves behind when a job is killed stays in the mesh's directory.
            scratch = mesh.workdir / "ansible"
            patch.setenv("ANSIBLE_HOME", str(scratch))
            patch.setenv("ANSIBLE_REMOTE_TEMP", str(scratch / "remote-tmp"))
            patch.setenv("TMPDIR", str(scratch / "tmp"))
            (scratch / "tmp").mkdir(parents=True)
            _make_pki(mesh.workdir)
            _make_signing_keys(mesh.workdir)
            execution = _start(mesh, "execution")
            hop = _start(mesh, "hop", execution_port=execution.port())
            control = _start(mesh, "control", hop_port=hop.port())
        wait_until(lambda: _control_ad(control, "execution"), timeout=60)
        wait_until(lambda: "control" in execution.routes(), timeout=60)
        yield AWXMesh(mesh.workdir, control, hop, execution)
    finally:
        try:
            for node in mesh.nodes:
                release_all(node)
        finally:
            mesh.close()


# ---------------------------------------------------------------------- helpers


def _private_data_dir(workdir: Path, **extravars: str) -> Path:
    """A fresh copy of the job's private data dir (transmit and process write into it)."""
    pdd = Path(shutil.copytree(DATA / "private_data_dir", workdir / f"pdd-{secrets.token_hex(4)}"))
    if extravars:
        (pdd / "env").mkdir()
        (pdd / "env" / "extravars").write_text(json.dumps(extravars))
    return pdd


def _submit_job(
    awx: AWXMesh, runner: Path, pdd: Path, playbook: str, worker_dir: Path
) -> dict[str, Any]:
    """``ansible-runner transmit`` streamed into ``submit_work``, as ``AWXReceptorJob`` does."""
    with (pdd.parent / f"{pdd.name}.transmit.err").open("wb") as errors:
        transmit = subprocess.Popen(
            [str(runner), "transmit", str(pdd), "-p", playbook],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        assert transmit.stdout is not None
        try:
            result = awx.receptorctl().submit_work(
                worktype="ansible-runner",
                payload=transmit.stdout,
                node="execution",
                tlsclient="tls_client",
                signwork=True,
                params={"params": f"--private-data-dir={worker_dir} --delete"},
            )
        finally:
            transmit.stdout.close()
            try:
                transmit.wait(JOB_TIMEOUT)
            except subprocess.TimeoutExpired:
                transmit.kill()
                transmit.wait()
                raise
    assert transmit.returncode == 0, (pdd.parent / f"{pdd.name}.transmit.err").read_text()
    return result


def _events(artifacts: Path) -> list[dict[str, Any]]:
    events = [json.loads(path.read_text()) for path in artifacts.rglob("job_events/*.json")]
    return sorted(events, key=lambda event: event["counter"])


def _release(awx: AWXMesh, unit_id: str) -> None:
    """Release on the control node; the execution node forgets its unit too."""
    assert awx.receptorctl().simple_command(f"work release {unit_id}") == {"released": unit_id}
    wait_until(lambda: awx.execution.command("work list") == {}, timeout=JOB_TIMEOUT)


# Processes, read from /proc (a zombie counts as gone: it has exited).


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent PID, start time) of a process, or None if there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _all_processes() -> dict[int, tuple[str, int, int]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))) is not None:
            table[int(entry)] = info
    return table


def _tree(root: int) -> dict[int, int]:
    """``root`` and its live descendants: PID → start time."""
    table = _all_processes()
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in table and table[pid][0] not in ("Z", "X"):
            tree[pid] = table[pid][2]
            todo.extend(children.get(pid, []))
    return tree


def _alive(processes: dict[int, int]) -> dict[int, list[str]]:
    """Those of ``processes`` (PID → start time) still running: PID → command line."""
    left = {}
    for pid, started in processes.items():
        info = _stat(pid)
        if info is not None and info[2] == started and info[0] not in ("Z", "X"):
            left[pid] = _cmdline(pid)
    return left


def _kill(processes: dict[int, int]) -> None:
    """SIGKILL what is left of a job (the PIDs recorded from its process tree, each checked
    against its start time first), so that a failed cancel leaves nothing behind."""
    for pid in _alive(processes):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------- tests


def test_mesh_is_awx_shaped(awx_mesh: AWXMesh):
    """Routes through the hop, TLS control services (ConnType 2) with the signed work type,
    the sockets' 0660, and a client certificate from another CA refused by the execution node."""
    control, hop, execution = awx_mesh.control, awx_mesh.hop, awx_mesh.execution
    assert control.routes()["execution"] == "hop"
    assert execution.routes()["control"] == "hop"
    ad = _control_ad(control, "execution")
    assert ad is not None and ad["ConnType"] == 2
    assert ad["WorkCommands"] == [{"WorkType": "ansible-runner", "Secure": True}]
    assert wait_until(lambda: _control_ad(control, "hop"))["ConnType"] == 2
    for node in (control, hop, execution):
        assert stat.S_IMODE(os.stat(node.socket_path).st_mode) == 0o660
    # Through the mesh with the node certificate: the execution node's greeting.
    with_cert = control.session(b"connect execution control tls_client\n", timeout=60)
    assert b"\nReceptor Control, node execution\n" in with_cert, with_cert
    # With a certificate for the same node ID from another CA: refused by the execution node.
    other_ca = control.session(b"connect execution control other_ca\n", timeout=60).decode()
    greeting, refusal = other_ca.split("\n", 1)
    assert greeting == "Receptor Control, node control"
    assert refusal.startswith("ERROR: "), other_ca
    assert refusal.endswith("certificate signed by unknown authority\n"), other_ca
    execution.wait_for_log(
        r"Refused a connection from control:\S+ to mesh service control \(tls-server tls_server\)"
        ": .*certificate signed by unknown authority"
    )


def test_job_runs_on_the_execution_node(awx_mesh: AWXMesh, ansible_venv: Path):
    runner = ansible_venv / "ansible-runner"
    pdd = _private_data_dir(awx_mesh.workdir)
    worker_dir = awx_mesh.workdir / "execution" / "job"
    result = _submit_job(awx_mesh, runner, pdd, "hello.yml", worker_dir)
    unit_id = result["unitid"]
    assert result["result"] == "Job Started"

    ctl = awx_mesh.receptorctl()
    resultsock, resultfile = ctl.get_work_results(unit_id, return_socket=True, return_sockfile=True)
    processed = pdd.parent / f"{pdd.name}-processed"
    with resultsock, resultfile:
        process = subprocess.run(
            [str(runner), "process", str(processed)],
            stdin=resultfile,
            capture_output=True,
            text=True,
            timeout=JOB_TIMEOUT,
        )
    assert process.returncode == 0, (process.stdout, process.stderr)
    assert "hello from the execution node" in process.stdout

    final = wait_done(awx_mesh.control, unit_id, timeout=JOB_TIMEOUT)
    assert final["StateName"] == "Succeeded", final
    extra = final["ExtraData"]
    assert (extra["RemoteNode"], extra["RemoteWorkType"]) == ("execution", "ansible-runner")
    assert (extra["SignWork"], extra["TLSClient"]) == (True, "tls_client")
    remote = status(awx_mesh.execution, extra["RemoteUnitID"])
    assert (remote["WorkType"], remote["StateName"]) == ("ansible-runner", "Succeeded")
    assert not worker_dir.exists()  # the worker's --delete

    (status_file,) = (processed / "artifacts").rglob("status")
    (rc_file,) = (processed / "artifacts").rglob("rc")
    assert (status_file.read_text(), rc_file.read_text()) == ("successful", "0")
    events = _events(processed / "artifacts")
    names = [event["event"] for event in events]
    assert "playbook_on_start" in names and names[-1] == "playbook_on_stats"
    ok = [event["event_data"] for event in events if event["event"] == "runner_on_ok"]
    assert [(data["host"], data["task"]) for data in ok] == [
        ("localhost", "say hello"),
        ("localhost", "run a command"),
    ]
    assert ok[0]["res"]["msg"] == "hello from the execution node"
    assert ok[1]["res"]["stdout"] == "command ran"
    stats = events[-1]["event_data"]
    assert (stats["ok"], stats["failures"]) == ({"localhost": 2}, {})

    _release(awx_mesh, unit_id)


def test_health_check_reports_the_worker(awx_mesh: AWXMesh):
    """AWX's ``worker_info``: ``ansible-runner worker --worker-info`` through the mesh."""
    ctl = awx_mesh.receptorctl()
    result = ctl.submit_work(
        worktype="ansible-runner",
        payload="",
        node="execution",
        tlsclient="tls_client",
        ttl="20s",
        signwork=True,
        params={"params": "--worker-info"},
    )
    unit_id = result["unitid"]
    resultfile = ctl.get_work_results(unit_id)
    with resultfile:
        final = wait_done(awx_mesh.control, unit_id, timeout=JOB_TIMEOUT)
        stdout = resultfile.read().decode()
    assert final["StateName"] == "Succeeded", final
    assert final["ExtraData"]["RemoteParams"] == {"params": "--worker-info"}
    info = yaml.safe_load(stdout.strip())
    assert set(info) == {"cpu_count", "errors", "mem_in_bytes", "runner_version", "uuid"}, info
    assert info["runner_version"] == ANSIBLE_RUNNER_VERSION
    assert info["errors"] == []
    assert isinstance(info["cpu_count"], int) and info["cpu_count"] >= 1
    assert isinstance(info["mem_in_bytes"], int) and info["mem_in_bytes"] > 0
    _release(awx_mesh, unit_id)


def test_cancel_stops_every_process_of_the_job(awx_mesh: AWXMesh, ansible_venv: Path):
    """``work cancel`` on the control node: the unit is Canceled on both nodes and nothing of
    the job (runner, ansible-runner, ansible-playbook, its forks, the task's ``sleep``) is
    left on the execution node: not below its daemon, and not orphaned elsewhere."""
    execution = awx_mesh.execution
    assert execution.process is not None
    daemon = execution.process.pid
    before = _tree(daemon)  # the daemon and its helpers (the runner fork server)
    # GNU sleep takes fractions: a duration no other process on the machine has.
    marker = f"3600.{secrets.randbelow(10**9):09d}"
    pdd = _private_data_dir(awx_mesh.workdir, sleep_seconds=marker)
    result = _submit_job(
        awx_mesh, ansible_venv / "ansible-runner", pdd, "sleep.yml", awx_mesh.workdir / "sleeper"
    )
    unit_id = result["unitid"]
    try:
        ctl = awx_mesh.receptorctl()
        resultsock, resultfile = ctl.get_work_results(
            unit_id, return_socket=True, return_sockfile=True
        )
        with resultsock, resultfile:
            wait_until(
                lambda: any(_cmdline(pid) == ["sleep", marker] for pid in _tree(daemon)),
                timeout=JOB_TIMEOUT,
                interval=0.2,
            )
            remote_id = status(awx_mesh.control, unit_id)["ExtraData"]["RemoteUnitID"]
            job = _tree(status(execution, remote_id)["ExtraData"]["Pid"])
            assert len(job) >= 4, job  # runner, ansible-runner, ansible-playbook, ..., sleep
            # What AWX does when a job is canceled.
            assert ctl.simple_command(f"work cancel {unit_id}") == {"cancelled": unit_id}
            resultsock.shutdown(socket.SHUT_RDWR)
        canceled = wait_done(awx_mesh.control, unit_id, timeout=JOB_TIMEOUT)
        assert canceled["StateName"] == "Canceled"
        assert wait_done(execution, remote_id, timeout=JOB_TIMEOUT)["StateName"] == "Canceled"

        def left() -> dict[int, int]:
            """Processes of the job still running: PID → start time."""
            running = {pid: job[pid] for pid in _alive(job)}
            running.update({pid: t for pid, t in _tree(daemon).items() if pid not in before})
            for pid, (state, _, started) in _all_processes().items():
                if state not in ("Z", "X") and _cmdline(pid) == ["sleep", marker]:
                    running[pid] = started
            return running

        try:
            wait_until(lambda: not left(), timeout=JOB_TIMEOUT, interval=0.2)
        except AssertionError:
            survivors = left()
            described = {pid: _cmdline(pid) for pid in survivors}
            _kill(survivors)
            raise AssertionError(
                f"processes of the canceled job still running: {described}"
            ) from None
    finally:
        _release(awx_mesh, unit_id)


def test_unsigned_submit_is_refused(awx_mesh: AWXMesh):
    ctl = awx_mesh.receptorctl()
    with pytest.raises(ReceptorControlError) as refused:
        ctl.submit_work(
            worktype="ansible-runner",
            payload="",
            node="execution",
            tlsclient="tls_client",
            signwork=False,
            params={"params": "--worker-info"},
        )
    assert str(refused.value) == (
        "Remote error: ERROR: could not parse response: "
        "ERROR: could not verify signature: signature is empty"
    )
    assert awx_mesh.execution.command("work list") == {}
    (unit_id,) = awx_mesh.control.command("work list")
    failed = status(awx_mesh.control, unit_id)
    assert failed["StateName"] == "Failed"
    assert failed["Detail"] == (
        "Error starting worker: could not parse response: "
        "ERROR: could not verify signature: signature is empty"
    )
    assert ctl.simple_command(f"work release {unit_id}") == {"released": unit_id}
