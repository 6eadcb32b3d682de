"""``receptor --validate``: every recorded configuration case gives start-up's first error, each
kind of problem is reported with its entity and file, the shipped configurations validate.

The recorded cases (tests/data/config) run in an empty directory holding their files, as
test_config_golden runs them through start-up; validation must never start anything.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from receptor._validate import Problem, validate

from ..unit.config._golden import index, load
from .test_config_golden import OUR_ANSWER, OUR_START, _prepare, _rsa_key_pem

pytestmark = pytest.mark.integration

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
NO_BACKENDS = "Nothing to do - no backends are running."

#: Cases start-up accepts that validation refuses, with the reason.
STRICTER = {
    # Start-up accepts it and every dial then fails with this text.
    "ws_peer_bad_url": "malformed ws or wss URL",
}

#: Start-up errors that only performing an exclusive action (writing certificates, reading
#: an answer) meets; validation performs nothing, so these configurations are valid.
PERFORMED = {
    "cert_init_bad_time",
    "cert_init_empty_commonname",
    "cert_makereq_bad_ip",
    "cert_signreq_cert_as_key",
    "cert_signreq_cert_as_req",
    "cert_signreq_long_nodeid",
    "cert_signreq_no_names",
    "cert_signreq_prompt_declined",
    "cert_signreq_prompt_eof",
    "cert_signreq_prompt_two_words",
    "cert_signreq_two_certs_in_cacert",
    "cert_signreq_wrong_ca_key",
}

#: The lock a running daemon holds is not a property of the configuration (and a restart
#: validates while the old daemon still holds it): valid.
MOMENTARY = {"control_socket_locked"}

#: Help and bash completion: nothing to validate.
NOTHING = {"noargs", "help_long", "help_short", "help_before_bad_entity", "bash_completion"}


def _expected(name: str) -> str | None:
    """The first problem validation must report for the case, None when it must pass."""
    case = load(name)
    if name in STRICTER:
        return STRICTER[name]
    if name in OUR_ANSWER:
        return OUR_ANSWER[name][1].decode().removeprefix("Error: ").rstrip("\n")
    if name in OUR_START or name in PERFORMED or name in MOMENTARY or case.exit_code != 1:
        return None
    if case.error is not None:
        return case.error
    # "Nothing to do" (a WARNING, hidden by --log-level error) and its hint.
    assert b"Run receptor --help for command line instructions." in case.stdout, case.stdout
    return NO_BACKENDS


@pytest.fixture
def workdir(monkeypatch):
    path = Path(tempfile.mkdtemp(prefix="rval", dir="/tmp"))
    monkeypatch.chdir(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("name", sorted(index()))
def test_recorded_case_first_problem_is_the_start_up_error(name, workdir):
    case = load(name)
    _prepare(name, workdir)
    for file_name, body in case.files.items():
        (workdir / file_name).write_bytes(body)
    if name in OUR_START:
        (workdir / OUR_START[name]).write_bytes(_rsa_key_pem())
    before = sorted(os.listdir(workdir))
    problems = validate(case.argv)
    if name in NOTHING:
        assert [p.message for p in problems] == [
            "no configuration to validate: give it with -c FILE or --<entity> ..."
        ]
        return
    expected = _expected(name)
    if expected is None:
        assert problems == [], problems
    else:
        assert problems, "valid, but start-up fails with: " + expected
        assert problems[0].message == expected
    # Nothing was created: no socket, no lock file, no data directory, no certificate.
    assert sorted(os.listdir(workdir)) == before


def test_the_case_lists_name_real_cases():
    names = set(index())
    assert set(STRICTER) | PERFORMED | MOMENTARY | NOTHING <= names


# ---------------------------------------------------------------------- each kind of problem


def _pki(tmp: Path) -> dict[str, Path]:
    """A CA, a certificate for node ``a`` and a key pair that does not match it."""
    run = [sys.executable, "-m", "receptor"]

    def receptor(*args: str) -> None:
        done = subprocess.run([*run, *args], cwd=tmp, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stdout

    receptor("--cert-init", "commonname=CA", "bits=2048", "outcert=ca.crt", "outkey=ca.key")
    for node in ("a", "b"):
        receptor(
            "--cert-makereq",
            "bits=2048",
            f"commonname={node}",
            f"nodeid={node}",
            f"outreq={node}.csr",
            f"outkey={node}.key",
        )
        receptor(
            "--cert-signreq",
            f"req={node}.csr",
            "cacert=ca.crt",
            "cakey=ca.key",
            f"outcert={node}.crt",
            "verify=yes",
        )
    return {name: tmp / name for name in ("ca.crt", "a.crt", "a.key", "b.crt", "b.key")}


@pytest.fixture(scope="module")
def pki():
    path = Path(tempfile.mkdtemp(prefix="rvalpki", dir="/tmp"))
    try:
        yield _pki(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def _yaml(workdir: Path, text: str) -> str:
    path = workdir / "receptor.conf"
    path.write_text(text)
    return str(path)


def test_yaml_syntax_error_names_the_file(workdir):
    good = _yaml(workdir, "- local-only\n")
    bad = workdir / "bad.yml"
    bad.write_text("- node:\n    id: [a\n")
    problem = _only(validate(["-c", good, "-c", str(bad)]))
    assert problem.source == str(bad)
    assert problem.entity is None
    assert problem.message.startswith("error loading config file: yaml: ")
    assert str(problem) == f"{bad}: {problem.message}"


def test_unreadable_file(workdir):
    missing = str(workdir / "missing.yml")
    problem = _only(validate(["-c", missing]))
    assert problem.message == (
        f"error loading config file: open {missing}: no such file or directory"
    )
    assert problem.source == missing


def test_certificate_file_missing_names_entity_file_and_position(workdir):
    config = _yaml(
        workdir,
        "- node:\n    id: a\n    datadir: data\n- local-only\n"
        "- tls-server:\n    name: srv\n    cert: nope.crt\n    key: nope.key\n",
    )
    problem = _only(validate(["-c", config]))
    assert (problem.source, problem.entity, problem.position) == (config, "tls-server", 3)
    assert problem.message == (
        "error preparing tls server config: open nope.crt: no such file or directory"
    )
    assert str(problem) == f"{config}: tls-server (item 3): {problem.message}"


def test_key_that_does_not_match_the_certificate(workdir, pki):
    problem = _only(
        validate(
            [
                "--node",
                "id=a",
                "datadir=data",
                "--local-only",
                "--tls-client",
                "name=c",
                f"cert={pki['a.crt']}",
                f"key={pki['b.key']}",
            ]
        )
    )
    assert problem.entity == "--tls-client"
    assert problem.source is None
    assert "private key does not match public key" in problem.message
    assert str(problem).startswith("command line: --tls-client: error preparing tls client")


def test_node_id_not_in_the_certificate(workdir, pki):
    args = ["--node", "id=a", "datadir=data", "--local-only", "--tls-server", "name=s"]
    assert validate([*args, f"cert={pki['a.crt']}", f"key={pki['a.key']}"]) == []
    problem = _only(validate([*args, f"cert={pki['b.crt']}", f"key={pki['b.key']}"]))
    assert problem.message.startswith(
        "error preparing tls server config: nodeID=a not found in certificate name(s); "
        "names found=[b]"
    )


def test_port_out_of_range_and_unparsable(workdir):
    problem = _only(validate(["--node", "id=a", "datadir=d", "--tcp-listener", "port=70000"]))
    assert problem.message == "listen tcp: address 70000: invalid port"
    problem = _only(validate(["--node", "id=a", "datadir=d", "--tcp-peer", "address=h:http2x"]))
    assert problem.message == "address http2x: unknown port"
    control = ["--control-service", "tcplisten=x"]
    problem = _only(validate(["--node", "id=a", "--local-only", *control]))
    assert problem.message == (
        "error listening on TCP socket: listen tcp: address tcp/x: unknown port"
    )
    problems = validate(["--node", "id=a", "datadir=d", "--tcp-listener", "port=abc"])
    assert _only(problems).message == (
        'error setting config value for field port: strconv.ParseInt: parsing "abc": invalid syntax'
    )


def test_work_command_not_on_path(workdir):
    args = ["--node", "id=a", "datadir=d", "--local-only", "--work-command", "worktype=w"]
    assert validate([*args, "command=cat"]) == []
    problem = _only(validate([*args, "command=no-such-command-here"]))
    assert problem.message == ('exec: "no-such-command-here": executable file not found in $PATH')
    problem = _only(validate([*args, f"command={workdir}/missing"]))
    assert problem.message == (
        f'exec: "{workdir}/missing": stat {workdir}/missing: no such file or directory'
    )
    problem = _only(validate([*args, "command=cat", "params='unclosed"]))
    assert problem.message == "params: EOF found when expecting closing quote"


def test_control_socket_directory_missing(workdir):
    problem = _only(
        validate(["--node", "id=a", "--local-only", "--control-service", "filename=no/c.sock"])
    )
    assert problem.message == (
        "error opening Unix socket: could not acquire lock on socket file: "
        "no such file or directory"
    )


def test_signing_keys_must_load(workdir):
    (workdir / "junk.pem").write_text("not a key\n")
    args = ["--node", "id=a", "datadir=d", "--local-only"]
    problem = _only(validate([*args, "--work-signing", "privatekey=junk.pem"]))
    assert problem.entity == "--work-signing"
    assert problem.message.startswith("could not load signing key file: ")
    problem = _only(validate([*args, "--work-verification", "publickey=junk.pem"]))
    assert problem.message.startswith("could not load verifying key file: ")
    (workdir / "key.pem").write_bytes(_rsa_key_pem())
    assert validate([*args, "--work-signing", "privatekey=key.pem"]) == []


def test_every_problem_is_reported_in_start_up_order(workdir):
    problems = validate(
        [
            "--node",
            "id=a",
            "datadir=d",
            "--tcp-listener",
            "port=99999",
            "--tcp-listener",
            "port=1",
            "tls=missing",
            "--work-command",
            "worktype=w",
            "command=no-such-command-here",
            "--tls-server",
            "name=s",
            "cert=x.crt",
            "key=x.key",
        ]
    )
    assert [(p.entity, p.message.split(":")[0]) for p in problems] == [
        ("--tls-server", "error preparing tls server config"),  # prepare before run
        ("--tcp-listener", "listen tcp"),
        ("--tcp-listener", "unknown TLS config missing"),
        ("--work-command", "exec"),
    ]


def test_a_tls_config_that_fails_is_still_known_by_name(workdir):
    listener = ["--tcp-listener", "port=1", "tls=s"]
    problems = validate(
        ["--node", "id=a", "datadir=d", *listener, "--tls-server", "name=s", "cert=x", "key=y"]
    )
    assert [p.entity for p in problems] == ["--tls-server"]


# ---------------------------------------------------------------------- shipped configurations


def test_example_config_validates(workdir):
    assert validate(["-c", str(PACKAGING / "example.yml")]) == []


def test_packaged_config_validates_once_its_directories_exist(workdir):
    """``/etc/receptor/receptor.conf`` as the unit runs it: ``/run/receptor`` and
    ``/var/lib/receptor`` exist (systemd makes them), here under a scratch root; the node
    ID, which defaults to the host name, is set."""
    text = (PACKAGING / "receptor.conf").read_text()
    for directory in ("/run/receptor", "/var/lib/receptor"):
        (workdir / directory.lstrip("/")).mkdir(parents=True)
        text = text.replace(directory, str(workdir / directory.lstrip("/")))
    text = text.replace("- node:\n", "- node:\n    id: validate-test\n", 1)
    assert "id: validate-test" in text
    assert validate(["-c", _yaml(workdir, text)]) == []


# ---------------------------------------------------------------------- the command


def test_command_line_output_and_status(workdir):
    config = _yaml(workdir, "- node:\n    id: a\n    datadir: d\n- tcp-listener:\n    port: -1\n")
    command = [sys.executable, "-m", "receptor", "--validate", "-c", config]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == (
        f"{config}: tcp-listener (item 2): listen tcp: address -1: invalid port\n1 problem found\n"
    )
    assert done.stderr == ""
    (workdir / "receptor.conf").write_text(
        "- node:\n    id: a\n    datadir: d\n- tcp-listener:\n    port: 1\n"
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, f"{config}: configuration is valid\n")
    assert not (workdir / "d").exists()


def test_validate_does_not_bind_a_port_in_use(workdir):
    """A restart validates while the running node still holds its port: not a problem."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        args = ["--node", "id=a", "datadir=d", "--tcp-listener", f"port={port}"]
        assert validate([*args, "bindaddr=127.0.0.1"]) == []


def test_datadir_that_cannot_be_made(workdir):
    (workdir / "file").write_text("")
    problem = _only(validate(["--node", "id=a", "datadir=file/d", "--local-only"]))
    assert problem.message == f"datadir file/d: {workdir}/file is not a directory"


#: Start-up errors of the run phase beyond the recorded cases: validation checks them
#: without running anything and must word them as start-up does.
RUN_PHASE_CASES = {
    "kubernetes": ["--work-kubernetes", "worktype=k", "namespace=n", "image=i"],
    "tcp_server_port": ["--tcp-server", "port=70000", "remotenode=b", "remoteservice=s"],
    "tcp_server_tls": [
        *["--tcp-server", "port=1", "remotenode=b", "remoteservice=s", "tlsclient=nope"],
    ],
    "udp_server_port": ["--udp-server", "port=70000", "remotenode=b", "remoteservice=s"],
    "udp_client_address": ["--udp-client", "service=u", "address=nowhere"],
    "tcp_client_service_taken": [
        *["--control-service", "service=svc", "--tcp-client", "service=svc"],
        "address=127.0.0.1:1",
    ],
    "unix_server_directory": [
        *["--unix-socket-server", "filename=no/such/dir.sock", "remotenode=b"],
        "remoteservice=s",
    ],
    "control_socket_directory": ["--control-service", "filename=no/such/dir.sock"],
    "control_no_listeners": ["--control-service", "service=", "filename="],
    "ws_listener_port": ["--ws-listener", "port=70000"],
    "udp_listener_port": ["--udp-listener", "port=70000"],
    "reserved_service": ["--control-service", "service=ping"],
}


@pytest.mark.parametrize("name", sorted(RUN_PHASE_CASES))
def test_run_phase_problem_worded_as_start_up(name, workdir):
    args = ["--node", "id=a", f"datadir={workdir}/data", "--local-only"]
    args += RUN_PHASE_CASES[name]
    process = subprocess.Popen(
        [sys.executable, "-m", "receptor", *args],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, (stdout, stderr)
    error = stdout.decode().splitlines()[-1].removeprefix("Error: ")
    assert validate(args)[0].message == error


def test_entity_whose_library_is_missing_or_too_old(workdir, monkeypatch):
    """A distribution package may only recommend the libraries of TLS, WebSocket, signed
    work and the stream proxies: validation names what an entity needs and is missing."""
    import receptor._validate as module

    monkeypatch.setattr(
        module, "_requirements", lambda: {"cryptography": ">=999", "no-such-lib": ">=1"}
    )
    monkeypatch.setitem(module._LIBRARIES, "ws-peer", ("no-such-lib",))
    args = ["--node", "id=a", "datadir=d", "--local-only"]
    problem = _only(validate([*args, "--tls-client", "name=c", "cert=x", "key=y"]))
    assert problem.message.startswith("needs the Python package cryptography>=999; ")
    assert problem.message.endswith(" is installed")
    # A listener naming that TLS config is not reported too.
    tls = ["--tls-server", "name=s", "cert=x", "key=y", "--tcp-listener", "port=1", "tls=s"]
    assert [p.entity for p in validate([*args, *tls])] == ["--tls-server"]
    problem = _only(validate([*args, "--ws-peer", "address=ws://127.0.0.1:1/"]))
    assert problem.message == "needs the Python package no-such-lib>=1, which is not installed"
    assert validate([*args, "--tcp-peer", "address=127.0.0.1:1"]) == []
