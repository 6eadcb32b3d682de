"""The Debian packages: built by dpkg-buildpackage, lintian-clean of errors, installed with apt
into a throwaway overlay of this machine, and the service started from them as its systemd
unit would start it, answering the packaged ``receptorctl`` on ``/run/receptor/receptor.sock``.
"""

import re
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_lintian_reports_no_errors(debs):
    changes = next(debs.glob("*.changes"))
    done = subprocess.run(
        ["lintian", "--fail-on", "error", "--tag-display-limit", "0", "--display-info", changes],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(done.stdout)  # the warnings and notes, for the log
    assert done.returncode == 0, done.stdout + done.stderr
    assert not re.search(r"^E: ", done.stdout, flags=re.M)


def test_packages_hold_what_they_should(debs):
    def contents(pattern: str) -> str:
        deb = next(debs.glob(pattern))
        return subprocess.run(
            ["dpkg-deb", "--contents", deb], capture_output=True, text=True, check=True
        ).stdout

    daemon = contents("receptor_*.deb")
    for path in (
        "./usr/bin/receptor",
        "./usr/bin/receptorctl",
        "./lib/systemd/system/receptor.service",
        "./etc/receptor/receptor.conf",
        "./usr/share/man/man1/receptor.1.gz",
        "./usr/share/man/man1/receptorctl.1.gz",
    ):
        assert path in daemon
    assert re.search(r"^-rw-r----- root/root .* \./etc/receptor/receptor\.conf$", daemon, re.M)
    modules = contents("python3-receptor_*.deb")
    for name in ("_codec_c", "_highwayhash_c", "_routing_c", "_runner_c"):
        assert re.search(rf"/{name}\.cpython-3\d+-[^/]*\.so$", modules, re.M), name
    assert "/receptorctl/cli.py" in modules
    assert not re.search(r"\.c$", modules, re.M)


@pytest.fixture(scope="module")
def installed(debs) -> dict[str, tuple[int, str]]:
    """Each step of deb_install_run.sh: its exit status and output."""
    namespaces = ["unshare", "--mount", "--pid", "--fork", "--kill-child"]
    done = subprocess.run(
        [*namespaces, "sh", str(HERE / "deb_install_run.sh"), str(debs)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(done.stdout, done.stderr)
    steps = {}
    for match in re.finditer(r"^### step (\S+)\n(.*?)^### rc (\d+)$", done.stdout, re.M | re.S):
        steps[match.group(1)] = (int(match.group(3)), match.group(2))
    assert "after-purge" in steps, done.stdout[-3000:] + done.stderr[-3000:]
    return steps


def _ok(installed, step: str) -> str:
    status, output = installed[step]
    assert status == 0, f"{step}: {output}"
    return output


def test_apt_installs_both_packages(installed):
    _ok(installed, "install")
    lines = _ok(installed, "packages").splitlines()
    assert all(line.endswith(" install ok installed") for line in lines), lines
    assert len(lines) == 2


def test_postinst_creates_the_user_and_the_directories(installed):
    user = _ok(installed, "user")
    assert re.search(r"^receptor:x:\d+:\d+:.*:/var/lib/receptor:/usr/sbin/nologin$", user, re.M)
    assert "uid=" in user and "(receptor)" in user
    assert _ok(installed, "permissions").splitlines() == [
        "/etc/receptor root:receptor 750",
        "/etc/receptor/receptor.conf root:receptor 640",
        "/var/lib/receptor receptor:receptor 750",
    ]


def test_service_is_not_enabled_before_it_is_configured(installed):
    status, output = installed["enabled"]
    assert status != 0, output


def test_systemd_analyze_verifies_the_installed_unit(installed):
    assert _ok(installed, "verify").strip() == ""


def test_man_pages_render(installed):
    page = _ok(installed, "man-receptor")
    assert "RECEPTOR(1)" in page
    assert "--validate" in page and "--tcp-listener" in page
    page = _ok(installed, "man-receptorctl")
    assert "RECEPTORCTL(1)" in page
    assert "work submit" in page and "RECEPTORCTL_SOCKET" in page
    paths = _ok(installed, "man-path").split()
    assert paths == [
        "/usr/share/man/man1/receptor.1.gz",
        "/usr/share/man/man1/receptorctl.1.gz",
    ]


def test_the_packaged_modules_use_the_compiled_core(installed):
    assert _ok(installed, "core").split() == [
        "receptor._core._codec_c",
        "receptor._core._highwayhash_c",
        "receptor._core._routing_c",
    ]


def test_service_starts_as_the_unit_runs_it_and_answers_receptorctl(installed):
    unit = _ok(installed, "unit")
    assert "User=receptor" in unit
    assert "ExecStartPre=/usr/bin/receptor --validate -c /etc/receptor/receptor.conf" in unit
    assert "ExecStart=/usr/bin/receptor -c /etc/receptor/receptor.conf" in unit
    _ok(installed, "configure")
    assert _ok(installed, "execstartpre") == (
        "/etc/receptor/receptor.conf: configuration is valid\n"
    )
    assert "daemon user: receptor" in _ok(installed, "start")
    assert _ok(installed, "socket").strip() == ("/run/receptor/receptor.sock receptor:receptor 600")
    status = _ok(installed, "status")
    assert status.startswith("Node ID: packaged-node\n"), status
    assert "Version: " in status
    assert _ok(installed, "work-list").strip() == "{}"
    # SIGTERM: the daemon dies by the signal, as upstream's does.
    assert installed["stop"][0] == 143
    log = installed["daemon-log"][1]
    assert "Running control service control" in log
    assert "Initialization complete" in log
    assert "Traceback" not in log


def test_execstartpre_refuses_a_broken_configuration(installed):
    status, output = installed["broken"]
    assert status == 1, output
    assert output.startswith("/etc/receptor/receptor.conf: tls-server (item 5): "), output
    assert output.endswith("1 problem found\n")


def test_purge_removes_configuration_and_data_but_keeps_the_user(installed):
    _ok(installed, "purge")
    output = installed["after-purge"][1]
    for path in ("/etc/receptor", "/var/lib/receptor", "/usr/bin/receptor"):
        assert f"cannot access '{path}': No such file or directory" in output
    assert re.search(r"^receptor:x:", output, re.M)
