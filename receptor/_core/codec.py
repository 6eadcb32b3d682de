"""Netceptor message codec and TCP backend framing (``spec/wire.md`` §1.1, §2, §3).

Uses the compiled twin ``_codec_c`` unless ``RECEPTOR_NO_EXTENSIONS`` is set or it is not built,
then the pure-Python twin ``_codec_py``; both have the same API and behaviour.
"""

from typing import TYPE_CHECKING

from receptor._core import load_twin

if TYPE_CHECKING:
    from receptor._core._codec_py import (
        HEADER_LEN,
        MAX_FRAME,
        MSG_DATA,
        MSG_REJECT,
        MSG_ROUTING_UPDATE,
        MSG_SERVICE_ADVERTISEMENT,
        REJECT_MESSAGE,
        SERVICE_NAME_MAX,
        Framer,
        decode_data,
        encode_data,
        frame,
        with_hops,
    )
else:
    _twin = load_twin("codec")
    globals().update((name, getattr(_twin, name)) for name in _twin.__all__)

__all__ = [
    "HEADER_LEN",
    "MAX_FRAME",
    "MSG_DATA",
    "MSG_REJECT",
    "MSG_ROUTING_UPDATE",
    "MSG_SERVICE_ADVERTISEMENT",
    "REJECT_MESSAGE",
    "SERVICE_NAME_MAX",
    "Framer",
    "decode_data",
    "encode_data",
    "frame",
    "with_hops",
]
