"""The daemon component for cert-init, cert-makereq and cert-signreq (certs.md).

These entities are exclusive (config.md §1.2): each invocation does one of them and exits
0, or prints ``Error: <message>`` and exits 1. ``cert-makereq`` checks its options in the
prepare phase; every action runs in the run phase (config.md §1.3). The work itself is in
:mod:`receptor.certificates._commands`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from receptor._daemon import Component, ExitRequest, Handler
from receptor._errors import ConfigError
from receptor.config import ConfigItem

if TYPE_CHECKING:
    from receptor.certificates._commands import MakeRequest

# The tooling (and cryptography) is imported by the handlers: most daemons never run them.


def _text(values: dict[str, Any], name: str) -> str:
    return values.get(name) or ""


def _words(values: dict[str, Any], name: str) -> list[str]:
    return list(values.get(name) or [])


def _make_request(values: dict[str, Any]) -> MakeRequest:
    from receptor.certificates._commands import MakeRequest

    return MakeRequest(
        common_name=_text(values, "commonname"),
        out_req=_text(values, "outreq"),
        bits=values.get("bits") or 0,
        dns_names=_words(values, "dnsname"),
        ip_addresses=_words(values, "ipaddress"),
        node_ids=_words(values, "nodeid"),
        in_key=_text(values, "inkey"),
        out_key=_text(values, "outkey"),
    )


def _perform(action: Callable[[], None]) -> None:
    """Run one exclusive action; success ends the process with status 0."""
    from receptor.certificates._pem import CertError

    try:
        action()
    except CertError as err:
        raise ConfigError(str(err)) from None
    raise ExitRequest(0)


class CertificateEntities(Component):
    """Runs the certificate tooling entities."""

    def handlers(self) -> dict[str, dict[str, Handler]]:
        return {
            "prepare": {"cert-makereq": self._prepare_makereq},
            "run": {
                "cert-init": self._run_init,
                "cert-makereq": self._run_makereq,
                "cert-signreq": self._run_signreq,
            },
        }

    def _prepare_makereq(self, item: ConfigItem) -> None:
        from receptor.certificates._pem import CertError

        try:
            _make_request(item.values).validate()
        except CertError as err:
            raise ConfigError(str(err)) from None

    def _run_makereq(self, item: ConfigItem) -> None:
        _perform(_make_request(item.values).run)

    def _run_init(self, item: ConfigItem) -> None:
        from receptor.certificates._commands import InitCA

        values = item.values
        command = InitCA(
            common_name=_text(values, "commonname"),
            bits=values.get("bits") or 0,
            out_cert=_text(values, "outcert"),
            out_key=_text(values, "outkey"),
            not_before=values.get("notbefore"),
            not_after=values.get("notafter"),
        )
        _perform(command.run)

    def _run_signreq(self, item: ConfigItem) -> None:
        from receptor.certificates._commands import SignRequest

        values = item.values
        command = SignRequest(
            req=_text(values, "req"),
            ca_cert=_text(values, "cacert"),
            ca_key=_text(values, "cakey"),
            out_cert=_text(values, "outcert"),
            verify=bool(values.get("verify")),
            not_before=values.get("notbefore"),
            not_after=values.get("notafter"),
        )
        _perform(command.run)
