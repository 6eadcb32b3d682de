"""Netceptor message codec and TCP backend framing (``spec/wire.md`` §1.1, §2, §3).

Uses the compiled twin ``_codec_c`` unless ``RECEPTOR_NO_EXTENSIONS`` is set or it is not built,
then the pure-Python twin ``_codec_py``; both have the same API and behaviour.
"""

from typing import TYPE_CHECKING

from receptor._core import NO_EXTENSIONS

if TYPE_CHECKING or NO_EXTENSIONS:
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
    try:
        from receptor._core._codec_c import (
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
    except ImportError:
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
