"""Control socket addresses: `/path`, `unix:/path`, `tcp://host:port`, `tls://host:port`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from receptorctl._errors import ControlAddressError

# Upstream's grammar, matched against the whole address. A host is letters, digits, `-`, `.`
# and `:` (so an unbracketed IPv6 literal works: the last `:` starts the port); a Unix path is
# anything without a colon, optionally behind `unix:` or `unix://`.
_ADDRESS = re.compile(r"(tcp|tls):(//)?([a-zA-Z0-9\-.:]+):([0-9]+)|(unix:(//)?)?([^:]+)")
# An extension: a bracketed IPv6 literal, `tcp://[::1]:2222`, as in URLs.
_BRACKETED = re.compile(r"(tcp|tls):(//)?\[([0-9a-fA-F:.%\w-]+)\]:([0-9]+)")


@dataclass(frozen=True)
class ControlAddress:
    """Where the control service listens.

    `kind` is `unix` (then `path` is set, `~` already expanded) or `tcp` / `tls` (then `host`
    and `port` are set).
    """

    kind: Literal["unix", "tcp", "tls"]
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind}://{host}:{self.port}"


def parse_control_address(text: str) -> ControlAddress:
    """Parse a control socket address the way upstream receptorctl does.

    Raises `ControlAddressError` (`Invalid socket address <text>`) if it fits no form, or if a
    port is above 65535. The Unix path is not checked here; connecting does that.
    """
    m = _BRACKETED.fullmatch(text) or _ADDRESS.fullmatch(text)
    if m is None:
        raise ControlAddressError(f"Invalid socket address {text}")
    scheme, _, host, port = m.group(1, 2, 3, 4)
    if scheme is None:
        return ControlAddress("unix", path=os.path.expanduser(m.group(7)))
    if int(port) > 65535:
        raise ControlAddressError(f"Invalid socket address {text}")
    return ControlAddress("tls" if scheme == "tls" else "tcp", host=host, port=int(port))
