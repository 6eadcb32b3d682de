"""HTTP proxy selection and CONNECT for the ``ws-peer`` dialer: no sockets here.

Follows Go's ``http.ProxyFromEnvironment`` (golang.org/x/net/http/httpproxy), which upstream's
WebSocket dialer uses: ``HTTPS_PROXY``/``https_proxy`` for ``wss://``, ``HTTP_PROXY``/
``http_proxy`` for ``ws://`` (upper case first), ``NO_PROXY``/``no_proxy`` exceptions, and
never a proxy for ``localhost`` or loopback IPs. As gorilla/websocket does, both schemes are
tunnelled with ``CONNECT``. Only ``http://`` proxies are supported (a ``socks5://`` or
``https://`` proxy URL fails every dial with a clear message).
"""

import base64
import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from receptor.backends._ws import WebSocketURL, parse_head


@dataclass(frozen=True)
class ProxyURL:
    scheme: str
    hostname: str
    port: int
    username: str | None
    password: str | None


def _env(environ: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return ""


def _parse_proxy(text: str) -> ProxyURL:
    parts = urllib.parse.urlsplit(text)
    if not parts.scheme or not parts.netloc:
        parts = urllib.parse.urlsplit("http://" + text)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid proxy address {text!r}") from None
    if not parts.hostname:
        raise ValueError(f"invalid proxy address {text!r}")
    default = {"http": 80, "https": 443, "socks5": 1080}.get(parts.scheme, 80)
    username = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return ProxyURL(parts.scheme, parts.hostname, port or default, username, password)


def _split(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        return host, rest.lstrip(":")
    host, sep, port = hostport.rpartition(":")
    if not sep or ":" in host:
        return hostport, ""
    return host, port


def _no_proxy_matches(no_proxy: str, host: str, port: str) -> bool:
    """Go's NO_PROXY rules: ``*``, IPs and CIDRs, ``domain`` (itself and subdomains),
    ``.domain`` / ``*.domain`` (subdomains only), each with an optional ``:port``."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False) if "/" in entry else None
        except ValueError:
            network = None
        if network is not None:
            if ip is not None and ip in network:
                return True
            continue
        entry_host, entry_port = _split(entry)
        try:
            entry_ip = ipaddress.ip_address(entry_host)
        except ValueError:
            entry_ip = None
        if entry_ip is not None:
            if ip is not None and ip == entry_ip and entry_port in ("", port):
                return True
            continue
        if not entry_host:
            continue
        if entry_host.startswith("*."):
            entry_host = entry_host[1:]
        match_host = not entry_host.startswith(".")
        if match_host:
            entry_host = "." + entry_host
        matched = host.endswith(entry_host) or (match_host and host == entry_host[1:])
        if matched and entry_port in ("", port):
            return True
    return False


def proxy_for(url: WebSocketURL, environ: Mapping[str, str] | None = None) -> ProxyURL | None:
    """The proxy to tunnel through for ``url``, or None to connect directly."""
    env = os.environ if environ is None else environ
    if url.secure:
        setting = _env(env, "HTTPS_PROXY", "https_proxy")
    else:
        setting = _env(env, "HTTP_PROXY", "http_proxy")
    if not setting:
        return None
    host, port = _split(url.hostport)
    host = host.lower()
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    if _no_proxy_matches(_env(env, "NO_PROXY", "no_proxy"), host, port):
        return None
    return _parse_proxy(setting)


def connect_request(target: str, proxy: ProxyURL) -> bytes:
    """The CONNECT request as Go writes it (credentials only when a password is given)."""
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}", "User-Agent: Go-http-client/1.1"]
    if proxy.username is not None and proxy.password is not None:
        token = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def check_connect_response(head: bytes) -> None:
    """Accept a ``200`` answer; otherwise ``ValueError`` carrying the status text (as Go:
    ``Forbidden`` for ``403 Forbidden``)."""
    try:
        response = parse_head(head)
    except ValueError:
        raise ValueError("malformed HTTP response from proxy") from None
    parts = response.start.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"malformed HTTP response {response.start!r} from proxy")
    if parts[1] != "200":
        raise ValueError(parts[2] if len(parts) > 2 else parts[1])
