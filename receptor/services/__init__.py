"""Proxy services: tunnel local TCP, UDP and Unix sockets over the mesh (config.md §3.12)."""
