"""The WebSocket core (receptor/backends/_ws.py): handshake bytes against the upstream capture,
gorilla's answers to bad requests, and the frame codec including hostile input."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receptor.backends import _ws

from .golden_ws import (
    EXCHANGES,
    REQUEST_1,
    REQUEST_2,
    RESPONSE_1,
    RESPONSE_2,
    accept_of,
    key_of,
    without_date,
)

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="

# ------------------------------------------------------------------------------ handshake


def test_upgrade_request_is_byte_exact_with_the_capture():
    url = _ws.parse_ws_url("ws://127.0.0.1:31701/")
    assert _ws.upgrade_request(url, key_of(REQUEST_1)) == REQUEST_1
    assert len(REQUEST_1) == 218


def test_upgrade_request_with_path_and_extraheader_is_byte_exact():
    url = _ws.parse_ws_url("ws://127.0.0.1:31703/receptor")
    request = _ws.upgrade_request(url, key_of(REQUEST_2), "X-Example-Token:abc 123")
    assert request == REQUEST_2


def test_extraheader_is_canonicalised_and_sorted_in():
    url = _ws.parse_ws_url("wss://Example.COM/a/b?x=1")
    request = _ws.upgrade_request(url, RFC_KEY, "authorization:Bearer t:k")
    assert request == (
        b"GET /a/b?x=1 HTTP/1.1\r\nHost: Example.COM\r\nUser-Agent: Go-http-client/1.1\r\n"
        b"Authorization: Bearer t:k\r\nConnection: Upgrade\r\nOrigin: https://Example.COM\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Upgrade: websocket\r\n\r\n"
    )


def test_extraheader_edge_cases():
    url = _ws.parse_ws_url("ws://h:1/")
    request = _ws.upgrade_request(url, RFC_KEY, "host:  other:2 ")
    assert request.startswith(b"GET / HTTP/1.1\r\nHost: other:2\r\n")
    request = _ws.upgrade_request(url, RFC_KEY, "Origin:x")
    assert b"Origin: x\r\nOrigin: http://h:1\r\n" in request
    request = _ws.upgrade_request(url, RFC_KEY, "x-a:one\r\nInjected: yes")
    assert b"X-A: one  Injected: yes\r\n" in request
    with pytest.raises(_ws.WebSocketError, match="duplicate header not allowed: Upgrade"):
        _ws.upgrade_request(url, RFC_KEY, "upgrade:h2c")


def test_new_keys_are_random_16_bytes():
    keys = {_ws.new_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(__import__("base64").b64decode(k)) == 16 for k in keys)


@pytest.mark.parametrize(
    ("request_bytes", "response"), [(REQUEST_1, RESPONSE_1), (REQUEST_2, RESPONSE_2)]
)
def test_listener_answers_the_captured_requests_exactly(request_bytes, response):
    pattern = "/receptor" if b"/receptor" in request_bytes else "/"
    answer, refusal = _ws.answer_upgrade(request_bytes, pattern)
    assert refusal is None
    assert answer == response


def test_accept_key_matches_rfc_6455_and_the_capture():
    assert _ws.accept_key(RFC_KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert _ws.accept_key(key_of(REQUEST_1)) == accept_of(RESPONSE_1)


@pytest.mark.parametrize(
    "title",
    [
        "Origin that does not match Host",
        "plain GET without upgrade headers",
        "upgrade for a path the listener does not serve (path: /receptor)",
    ],
)
def test_refusals_match_upstream_modulo_date(title):
    exchange = EXCHANGES[title]
    answer, refusal = _ws.answer_upgrade(exchange.request, "/receptor")
    assert answer == b"" and refusal is not None
    assert without_date(refusal.response) == without_date(exchange.received)


def test_refusal_log_texts_are_gorillas():
    _, bad_origin = _ws.answer_upgrade(
        EXCHANGES["Origin that does not match Host"].request, "/receptor"
    )
    _, plain = _ws.answer_upgrade(
        EXCHANGES["plain GET without upgrade headers"].request, "/receptor"
    )
    _, wrong_path = _ws.answer_upgrade(
        EXCHANGES["upgrade for a path the listener does not serve (path: /receptor)"].request,
        "/receptor",
    )
    assert bad_origin is not None and plain is not None and wrong_path is not None
    assert bad_origin.log == "websocket: request origin not allowed by Upgrader.CheckOrigin"
    assert plain.log == (
        "websocket: the client is not using the websocket protocol: "
        "'upgrade' token not found in 'Connection' header"
    )
    assert wrong_path.log is None


def _upgrade(path="/receptor", host="127.0.0.1:31705", extra=b"", method=b"GET"):
    return (
        method + b" " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        b"Sec-WebSocket-Key: "
        + RFC_KEY.encode()
        + b"\r\nSec-WebSocket-Version: 13\r\n"
        + extra
        + b"\r\n"
    )


def test_valid_upgrade_without_origin_is_accepted():
    exchange = EXCHANGES[
        "valid upgrade without Origin header (first listener frame follows the 101)"
    ]
    answer, refusal = _ws.answer_upgrade(exchange.request, "/receptor")
    assert refusal is None
    assert exchange.received.startswith(answer)


@pytest.mark.parametrize(
    "origin",
    [b"http://127.0.0.1:31705", b"https://127.0.0.1:31705/x", b"HTTP://user@127.0.0.1:31705"],
)
def test_same_origin_accepted(origin):
    _, refusal = _ws.answer_upgrade(_upgrade(extra=b"Origin: " + origin + b"\r\n"), "/receptor")
    assert refusal is None


@pytest.mark.parametrize(
    "origin", [b"http://127.0.0.1:31706", b"http://127.0.0.1", b"null", b"http://[::1"]
)
def test_other_origin_refused_with_403(origin):
    _, refusal = _ws.answer_upgrade(_upgrade(extra=b"Origin: " + origin + b"\r\n"), "/receptor")
    assert refusal is not None
    assert refusal.response.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert refusal.response.endswith(b"\r\n\r\nForbidden\n")


@pytest.mark.parametrize(
    ("pattern", "path", "served"),
    [
        ("/", "/", True),
        ("/", "/some/other/path", True),
        ("/receptor", "/receptor", True),
        ("/receptor", "/receptor?x=1", True),
        ("/receptor", "/receptor/sub", False),
        ("/receptor", "/other", False),
        ("/receptor/", "/receptor/sub", True),
        ("/receptor", "/rec%65ptor", True),
    ],
)
def test_path_follows_servemux(pattern, path, served):
    _, refusal = _ws.answer_upgrade(_upgrade(path), pattern)
    assert (refusal is None) == served
    if not served:
        assert refusal is not None
        assert refusal.response.endswith(b"404 page not found\n")


@pytest.mark.parametrize(
    ("request_bytes", "status", "log_part"),
    [
        (_upgrade(method=b"POST"), b"405 Method Not Allowed", "request method is not GET"),
        (
            _upgrade().replace(b"Version: 13", b"Version: 8"),
            b"400 Bad Request",
            "unsupported version",
        ),
        (_upgrade().replace(RFC_KEY.encode(), b"short"), b"400 Bad Request", "16-byte"),
        (
            _upgrade().replace(b"Upgrade: websocket", b"Upgrade: h2c"),
            b"400 Bad Request",
            "'websocket' token not found",
        ),
    ],
)
def test_bad_upgrades_get_gorillas_status(request_bytes, status, log_part):
    _, refusal = _ws.answer_upgrade(request_bytes, "/")
    assert refusal is not None and refusal.log is not None
    assert refusal.response.startswith(b"HTTP/1.1 " + status + b"\r\n")
    assert b"Sec-Websocket-Version: 13\r\n" in refusal.response
    assert log_part in refusal.log


@pytest.mark.parametrize(
    ("request_bytes", "body"),
    [
        (b"\r\n", b"400 Bad Request"),
        (b"GARBAGE\r\n", b"400 Bad Request"),
        (b"GET / HTTP/9.9\r\nHost: x\r\n", b"400 Bad Request: malformed HTTP version"),
        (b"GET / HTTP/1.1\r\n", b"400 Bad Request: missing required Host header"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n", b"400 Bad Request: too many Host headers"),
        (b"GET / HTTP/1.1\r\nno colon here\r\n", b"400 Bad Request: malformed MIME header line"),
        (b"GET / HTTP/1.1\r\nBad Name: x\r\n", b"400 Bad Request: malformed MIME header line"),
        (b"\xff\xfe\x00 / HTTP/1.1\r\nHost: x\r\n", None),
    ],
)
def test_malformed_requests_get_net_http_400(request_bytes, body):
    _, refusal = _ws.answer_upgrade(request_bytes, "/")
    assert refusal is not None
    assert refusal.response.startswith(b"HTTP/1.1 4")
    if body is not None:
        assert refusal.response == (
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\n\r\n" + body
        )


def test_header_too_large_answer():
    assert _ws.header_too_large().response.startswith(
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    )


@given(st.binary(max_size=300))
def test_any_request_bytes_get_an_answer_not_an_exception(data):
    answer, refusal = _ws.answer_upgrade(data + b"\r\n", "/")
    assert (answer == b"") == (refusal is not None)


def test_check_upgrade_response():
    _ws.check_upgrade_response(RESPONSE_1, key_of(REQUEST_1))
    with pytest.raises(_ws.WebSocketError, match=r"websocket: bad handshake"):
        _ws.check_upgrade_response(RESPONSE_1, RFC_KEY)
    with pytest.raises(_ws.WebSocketError, match=r"bad handshake"):
        _ws.check_upgrade_response(b"HTTP/1.1 403 Forbidden\r\n", RFC_KEY)
    with pytest.raises(_ws.WebSocketError, match=r"bad handshake"):
        _ws.check_upgrade_response(b"\x00\x01garbage\r\n", RFC_KEY)


@pytest.mark.parametrize(
    ("address", "secure", "host", "hostname", "port", "target", "hostport"),
    [
        ("ws://127.0.0.1:31201/", False, "127.0.0.1:31201", "127.0.0.1", 31201, "/", None),
        ("ws://h", False, "h", "h", 80, "/", "h:80"),
        ("wss://h/p?q=1", True, "h", "h", 443, "/p?q=1", "h:443"),
        ("wss://[::1]:9/", True, "[::1]:9", "::1", 9, "/", "[::1]:9"),
        ("wss://[::1]/", True, "[::1]", "::1", 443, "/", "[::1]:443"),
    ],
)
def test_parse_ws_url(address, secure, host, hostname, port, target, hostport):
    url = _ws.parse_ws_url(address)
    assert (url.secure, url.host, url.hostname, url.port, url.target) == (
        secure,
        host,
        hostname,
        port,
        target,
    )
    assert url.hostport == (hostport or host)
    assert url.origin == ("https://" if secure else "http://") + host


@pytest.mark.parametrize(
    "address",
    ["http://127.0.0.1:31993/", "foo", "ws://", "ws://h:99999/", "ws://[::1/", "", "ws://u:p@h/"],
)
def test_malformed_urls(address):
    with pytest.raises(ValueError, match=r"^malformed ws or wss URL$"):
        _ws.parse_ws_url(address)


def test_canonical_header():
    assert _ws.canonical_header("x-example-token") == "X-Example-Token"
    assert _ws.canonical_header("SEC-WEBSOCKET-KEY") == "Sec-Websocket-Key"
    assert _ws.canonical_header("bad name") == "bad name"


# ------------------------------------------------------------------------------ frames

KEY = b"\x01\x02\x03\x04"


def test_frame_headers_match_the_capture():
    assert _ws.encode_frame(_ws.OP_BINARY, bytes(36))[:2] == bytes.fromhex("8224")
    assert _ws.encode_frame(_ws.OP_BINARY, bytes(163))[:4] == bytes.fromhex("827e00a3")
    masked = _ws.encode_frame(_ws.OP_BINARY, bytes(36), bytes.fromhex("0fc83eae"))
    assert masked[:6] == bytes.fromhex("82a40fc83eae")
    assert masked[6:] == bytes.fromhex("0fc83eae") * 9
    masked = _ws.encode_frame(_ws.OP_BINARY, bytes(159), bytes.fromhex("abd572a3"))
    assert masked[:8] == bytes.fromhex("82fe009fabd572a3")
    assert _ws.encode_frame(_ws.OP_BINARY, bytes(70000))[:10] == bytes.fromhex(
        "827f0000000000011170"
    )


def test_client_frames_get_fresh_mask_keys():
    frames = {_ws.client_frame(_ws.OP_BINARY, b"x")[2:6] for _ in range(20)}
    assert len(frames) == 20


def test_golden_client_frames_decode():
    server = _ws.FrameDecoder(server=True)
    ping = EXCHANGES["after the upgrade the client sends a masked ping frame with payload 'hello'"]
    assert server.feed(ping.frame) == [_ws.Control(_ws.OP_PING, b"hello")]
    close = EXCHANGES["after the upgrade the client sends a masked close frame (1000, 'bye')"]
    with pytest.raises(_ws.CloseReceived) as info:
        server.feed(close.frame)
    assert str(info.value) == "websocket: close 1000 (normal): bye"
    assert _ws.encode_frame(_ws.OP_CLOSE, _ws.close_payload(info.value.code)) == bytes.fromhex(
        "880203e8"
    )


def test_unmasked_client_frame_is_bad_mask_with_gorillas_close():
    unmasked = EXCHANGES["after the upgrade the client sends an UNMASKED binary frame"].frame
    with pytest.raises(_ws.FrameError) as info:
        _ws.FrameDecoder(server=True).feed(unmasked)
    err = info.value
    assert str(err) == "websocket: bad MASK"
    frame = _ws.encode_frame(_ws.OP_CLOSE, _ws.close_payload(err.close_code, err.close_reason))
    assert frame == b"\x88\n\x03\xeabad MASK"


def test_masked_server_frame_is_bad_mask_for_the_dialer():
    with pytest.raises(_ws.FrameError, match=r"bad MASK"):
        _ws.FrameDecoder(server=False).feed(_ws.encode_frame(_ws.OP_BINARY, b"x", KEY))


def test_text_frames_are_data_and_fragments_reassemble():
    decoder = _ws.FrameDecoder(server=True)
    assert decoder.feed(_ws.encode_frame(_ws.OP_TEXT, b'\x01{"a":1}', KEY)) == [b'\x01{"a":1}']
    first = bytes((0x02, 0x83)) + KEY + _ws._mask(b"abc", KEY)
    middle = bytes((0x00, 0x82)) + KEY + _ws._mask(b"de", KEY)
    ping = _ws.encode_frame(_ws.OP_PING, b"p", KEY)
    last = bytes((0x80, 0x81)) + KEY + _ws._mask(b"f", KEY)
    assert decoder.feed(first + middle) == []
    assert decoder.feed(ping + last) == [_ws.Control(_ws.OP_PING, b"p"), b"abcdef"]


@given(st.lists(st.binary(max_size=70000), max_size=4), st.integers(1, 5000))
def test_frames_round_trip_in_any_chunking(messages, chunk):
    data = b"".join(_ws.client_frame(_ws.OP_BINARY, m) for m in messages)
    decoder = _ws.FrameDecoder(server=True)
    got: list = []
    for i in range(0, len(data), chunk):
        got += decoder.feed(data[i : i + chunk])
    assert got == messages
    assert decoder.buffered == 0


def _frame(first: int, payload: bytes = b"", length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    return bytes((first, 0x80 | n)) + KEY + _ws._mask(payload, KEY)


@pytest.mark.parametrize(
    ("data", "message", "code"),
    [
        (_frame(0xC2, b"x"), "websocket: unexpected reserved bits 0x40", 1002),
        (_frame(0x83, b"x"), "websocket: unknown opcode 3", 1002),
        (_frame(0x89, b"x" * 126, 126), "websocket: control frame length > 125", 1002),
        (_frame(0x09, b"x"), "websocket: control frame not final", 1002),
        (_frame(0x80, b"x"), "websocket: continuation after final message frame", 1002),
        (_frame(0x02, b"x") + _frame(0x82, b"y"), "message start before final message frame", 1002),
        (_frame(0x88, struct.pack("!H", 1005)), "websocket: bad close code 1005", 1002),
        (_frame(0x88, struct.pack("!H", 999)), "websocket: bad close code 999", 1002),
        (_frame(0x88, b"\x03\xe8\xff"), "websocket: invalid utf8 payload in close frame", 1002),
        (
            bytes((0x82, 0xFF)) + struct.pack("!Q", 1 << 63) + KEY,
            "websocket: read limit exceeded",
            1009,
        ),
        (
            bytes((0x82, 0xFF)) + struct.pack("!Q", _ws.MAX_MESSAGE + 1),
            "websocket: read limit exceeded",
            1009,
        ),
    ],
)
def test_framing_errors(data, message, code):
    with pytest.raises(_ws.FrameError) as info:
        _ws.FrameDecoder(server=True).feed(data)
    assert message in str(info.value)
    assert info.value.close_code == code


def test_fragmented_message_over_the_limit_is_refused():
    decoder = _ws.FrameDecoder(server=True, max_message=10)
    decoder.feed(bytes((0x02, 0x86)) + KEY + bytes(6))
    with pytest.raises(_ws.FrameError, match=r"read limit exceeded"):
        decoder.feed(bytes((0x80, 0x85)) + KEY + bytes(5))


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        (b"", "websocket: close 1005 (no status)"),
        (b"\x03\xe9", "websocket: close 1001 (going away)"),
        (b"\x0f\xa0hi", "websocket: close 4000: hi"),
    ],
)
def test_close_texts(payload, text):
    with pytest.raises(_ws.CloseReceived) as info:
        _ws.FrameDecoder(server=True).feed(_frame(0x88, payload))
    assert str(info.value) == text


@given(st.binary(max_size=400))
def test_garbage_frames_never_escape_as_other_exceptions(data):
    decoder = _ws.FrameDecoder(server=True)
    try:
        decoder.feed(data)
    except _ws.WebSocketError:
        pass
