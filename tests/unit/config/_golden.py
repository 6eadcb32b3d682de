"""Reading the golden captures of the upstream daemon kept in ``tests/data/config``."""

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "config"

_HEADER = re.compile(rb"^### (stdout|stderr) \((\d+) bytes\):\n", re.M)


@dataclass
class GoldenCase:
    """One recorded run: the command, the files it used, and what the daemon printed."""

    name: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    exit_code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def error(self) -> str | None:
        """The message after ``Error: `` when the run failed with one."""
        text = self.stdout.decode()
        for line in text.splitlines():
            if line.startswith("Error: "):
                return text[text.index("Error: ") + len("Error: ") :].rstrip("\n")
        return None


def index() -> dict[str, str]:
    """Case name -> recorded exit code (``rc=0``, ``rc=killed`` ...) from ``INDEX``."""
    cases = {}
    for line in (DATA / "INDEX").read_text().splitlines():
        if line.strip():
            name, rc = line.split()[:2]
            cases[name] = rc
    return cases


def load(name: str) -> GoldenCase:
    raw = (DATA / f"{name}.txt").read_bytes()
    case = GoldenCase(name=name, argv=[])
    lines = raw.split(b"\n")
    i = 0
    while i < len(lines):
        line = lines[i].decode(errors="replace")
        if line.startswith("### command: "):
            words = shlex.split(line[len("### command: ") :])
            assert words[0] == "receptor"
            case.argv = words[1:]
        elif line.startswith("### file ") and line.endswith(":"):
            file_name = line[len("### file ") : -1]
            body = []
            i += 1
            while i < len(lines) and not lines[i].startswith(b"### "):
                body.append(lines[i] + b"\n")
                i += 1
            case.files[file_name] = b"".join(body)
            continue
        elif line.startswith("### exit code: "):
            case.exit_code = int(line[len("### exit code: ") :])
        i += 1
    for match in _HEADER.finditer(raw):
        start = match.end()
        content = raw[start : start + int(match[2])]
        if match[1] == b"stdout":
            case.stdout = content
        else:
            case.stderr = content
    return case
