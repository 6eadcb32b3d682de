"""Proxy selection as Go's http.ProxyFromEnvironment, and the CONNECT exchange bytes."""

import pytest

from receptor.backends import _proxy, _ws


def proxy(address: str, **env: str):
    return _proxy.proxy_for(_ws.parse_ws_url(address), env)


def test_no_variables_no_proxy():
    assert proxy("ws://example.com/") is None


def test_scheme_picks_the_variable_upper_case_first():
    env = {"HTTP_PROXY": "p1:3128", "http_proxy": "p2:1", "HTTPS_PROXY": "http://p3:8080"}
    plain = proxy("ws://example.com/", **env)
    assert plain is not None and (plain.scheme, plain.hostname, plain.port) == ("http", "p1", 3128)
    secure = proxy("wss://example.com/", **env)
    assert secure is not None and (secure.hostname, secure.port) == ("p3", 8080)
    lower = proxy("wss://example.com/", https_proxy="p4")
    assert lower is not None and (lower.hostname, lower.port) == ("p4", 80)
    assert proxy("wss://example.com/", HTTP_PROXY="p1:3128") is None


@pytest.mark.parametrize(
    "address", ["ws://localhost:1/", "ws://LOCALHOST/", "ws://127.0.0.1:9/", "ws://[::1]:9/"]
)
def test_loopback_is_never_proxied(address):
    assert proxy(address, HTTP_PROXY="p:1") is None


@pytest.mark.parametrize(
    ("no_proxy", "address", "bypass"),
    [
        ("*", "ws://a.example/", True),
        ("example.com", "ws://example.com/", True),
        ("example.com", "ws://sub.example.com/", True),
        ("example.com", "ws://notexample.com/", False),
        (".example.com", "ws://example.com/", False),
        (".example.com", "ws://sub.example.com/", True),
        ("*.example.com", "ws://sub.example.com/", True),
        ("example.com:8080", "ws://example.com:8080/", True),
        ("example.com:8080", "ws://example.com/", False),
        ("10.0.0.0/8", "ws://10.1.2.3/", True),
        ("10.0.0.0/8", "ws://11.1.2.3/", False),
        ("10.1.2.3", "ws://10.1.2.3:5/", True),
        ("10.1.2.3:6", "ws://10.1.2.3:5/", False),
        ("[2001:db8::1]:80", "ws://[2001:db8::1]/", True),
        (" , other.org , EXAMPLE.com ", "ws://example.com/", True),
        (":80", "ws://example.com/", False),
    ],
)
def test_no_proxy_rules(no_proxy, address, bypass):
    assert (proxy(address, HTTP_PROXY="p:1", NO_PROXY=no_proxy) is None) == bypass


def test_lower_case_no_proxy_is_read():
    assert proxy("ws://example.com/", HTTP_PROXY="p:1", no_proxy="example.com") is None


def test_proxy_credentials_and_connect_request():
    found = proxy("wss://example.com/x", HTTPS_PROXY="http://us%40r:p%3Ass@p:3128")
    assert found is not None
    assert (found.username, found.password) == ("us@r", "p:ss")
    assert _proxy.connect_request("example.com:443", found) == (
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
        b"User-Agent: Go-http-client/1.1\r\nProxy-Authorization: Basic dXNAcjpwOnNz\r\n\r\n"
    )
    anonymous = proxy("ws://example.com/", HTTP_PROXY="p:1")
    assert anonymous is not None
    assert _proxy.connect_request("example.com:80", anonymous) == (
        b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n"
        b"User-Agent: Go-http-client/1.1\r\n\r\n"
    )


def test_other_proxy_schemes_are_reported():
    found = proxy("ws://example.com/", HTTP_PROXY="socks5://p:1080")
    assert found is not None and found.scheme == "socks5"


def test_bad_proxy_address():
    with pytest.raises(ValueError, match=r"invalid proxy address"):
        proxy("ws://example.com/", HTTP_PROXY="http://p:notaport")


def test_connect_responses():
    _proxy.check_connect_response(b"HTTP/1.1 200 Connection established\r\n")
    _proxy.check_connect_response(b"HTTP/1.0 200 OK\r\nX: y\r\n")
    with pytest.raises(ValueError, match=r"^Forbidden$"):
        _proxy.check_connect_response(b"HTTP/1.1 403 Forbidden\r\n")
    with pytest.raises(ValueError, match=r"^Proxy Authentication Required$"):
        _proxy.check_connect_response(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
    with pytest.raises(ValueError, match=r"malformed"):
        _proxy.check_connect_response(b"SSH-2.0-OpenSSH\r\n")
    with pytest.raises(ValueError, match=r"malformed"):
        _proxy.check_connect_response(b"\r\n")
