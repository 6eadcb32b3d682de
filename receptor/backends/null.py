"""``local-only``: a backend with no sessions, so a node can run without any network."""

from receptor.netceptor import Backend, BackendInfo, Netceptor


class NullBackend(Backend):
    """Counts as a backend for the "nothing to do" check; never produces a session."""

    def start(self, netceptor: Netceptor, info: BackendInfo) -> None:
        pass

    def stop(self) -> None:
        pass
