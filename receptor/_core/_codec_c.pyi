# The compiled twin has exactly the API of the pure-Python one.
from receptor._core._codec_py import HEADER_LEN as HEADER_LEN
from receptor._core._codec_py import MAX_FRAME as MAX_FRAME
from receptor._core._codec_py import MSG_DATA as MSG_DATA
from receptor._core._codec_py import MSG_REJECT as MSG_REJECT
from receptor._core._codec_py import MSG_ROUTING_UPDATE as MSG_ROUTING_UPDATE
from receptor._core._codec_py import MSG_SERVICE_ADVERTISEMENT as MSG_SERVICE_ADVERTISEMENT
from receptor._core._codec_py import REJECT_MESSAGE as REJECT_MESSAGE
from receptor._core._codec_py import SERVICE_NAME_MAX as SERVICE_NAME_MAX
from receptor._core._codec_py import Framer as Framer
from receptor._core._codec_py import decode_data as decode_data
from receptor._core._codec_py import encode_data as encode_data
from receptor._core._codec_py import frame as frame
from receptor._core._codec_py import with_hops as with_hops

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
