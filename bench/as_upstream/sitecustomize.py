"""Benchmarks only (``bench_streams.py``): loaded through ``PYTHONPATH`` by the daemons of
the "as to Go" measurement, it makes the daemon treat every peer as an upstream node, so
its mesh streams use 1200-byte datagrams both ways, as toward quic-go (wire.md §14.6)."""

from receptor.netceptor import _quic

_quic.initial_is_marked = lambda datagram: False  # type: ignore[assignment]
_quic.MeshQuicConnection.peer_is_receptor_py = lambda self: False  # type: ignore[method-assign]
