"""The RPM spec: Debian's rpm parses it and rpmlint finds no error in it.

Building the RPMs needs a Fedora/RHEL builder (packaging/README.md); what can be checked
here is the spec itself, with the one path macro of systemd-rpm-macros the %files use.
"""

import re
import subprocess
from pathlib import Path

SPEC = Path(__file__).resolve().parents[2] / "packaging" / "receptor.spec"
#: systemd-rpm-macros' value on Fedora/RHEL; Debian's rpm does not define it.
FEDORA_DEFINES = ["--define", "_unitdir /usr/lib/systemd/system"]
#: Macros of Fedora's pyproject-rpm-macros, python-rpm-macros and systemd-rpm-macros that
#: only a Fedora/RHEL builder expands.
BUILDER_MACROS = {
    "pyproject_buildrequires",
    "pyproject_wheel",
    "pyproject_install",
    "pyproject_save_files",
    "pyproject_files",
    "pyproject_check_import",
    "py3_test_envvars",
    "python3",
    "systemd_post",
    "systemd_preun",
    "systemd_postun_with_restart",
}

#: Section and file-list directives (not macros).
SPEC_KEYWORDS = {
    "description",
    "package",
    "prep",
    "generate_buildrequires",
    "build",
    "install",
    "check",
    "pre",
    "post",
    "preun",
    "postun",
    "files",
    "changelog",
    "doc",
    "dir",
    "attr",
    "config",
}


def _rpmspec(*args: str) -> str:
    done = subprocess.run(
        ["rpmspec", *FEDORA_DEFINES, *args, str(SPEC)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    return done.stdout


def test_rpmspec_parses_the_spec():
    text = _rpmspec("-P")
    left = set(re.findall(r"%\{\??([A-Za-z_]\w*)", text))
    left |= set(re.findall(r"^%([A-Za-z_]\w*)", text, re.M)) - SPEC_KEYWORDS
    assert left <= BUILDER_MACROS, left - BUILDER_MACROS
    files = text[text.index("%files -n receptor") :]
    for path in (
        "/usr/bin/receptor",
        "/usr/bin/receptorctl",
        "/usr/lib/systemd/system/receptor.service",
        "/usr/share/man/man1/receptor.1*",
        "/usr/share/man/man1/receptorctl.1*",
        "/etc/receptor/receptor.conf",
        "/var/lib/receptor",
    ):
        assert path in files, path


def test_rpmspec_lists_the_packages():
    listed = _rpmspec("-q", "--qf", "%{NAME} %{ARCH}\n").splitlines()
    packages = dict(line.split() for line in listed)
    arch = packages["python3-receptor"]
    assert arch != "noarch"  # the compiled core
    assert packages == {"python-receptor": arch, "receptor": "noarch", "python3-receptor": arch}


def test_rpmlint_finds_no_error():
    done = subprocess.run(["rpmlint", str(SPEC)], capture_output=True, text=True, timeout=120)
    print(done.stdout)  # the warnings, for the log
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b0 errors\b", done.stdout), done.stdout
