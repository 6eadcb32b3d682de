"""The `receptorctl` command line: every command, option, help text, output and exit code of
upstream receptorctl 1.6.9.

Every invocation with `--socket` connects, asks the daemon for its `Version` (warning on stderr
when it differs from ours) and runs the command on the same connection. Errors print
`ERROR: <message>` in red on stderr and exit 1 unless a command says otherwise.

Where we differ from upstream on purpose:

* a reply upstream cannot handle (a missing key, an unknown `ConnType`, an unparsable time, a
  reply of the wrong JSON type) makes upstream die with a traceback or a bare `KeyError` text;
  here it is one `ERROR: malformed … reply from receptor: …` line and exit 1, and `status`
  prints nothing of a reply it cannot print whole;
* with `--help` anywhere on the command line no connection is made (upstream connected first
  when a socket was given, and failed if it could not);
* `connect` works with stdin and stdout that are not terminals (upstream failed on
  `tcgetattr`): at the end of stdin the connection is half-closed and the remote output is read
  to its end; bytes are passed through unchanged (upstream decoded them as UTF-8 and could
  crash on a multi-byte character split across reads); stdin is left in blocking mode;
* `work submit --param` without `=` says so (upstream: `dictionary update sequence element #0
  has length 1; 2 is required`), still with exit code 101.

Kept on purpose although odd: Ctrl-C exits 0 (after a newline on stderr); usage errors print
`ERROR: <click message>` and exit 1; no arguments print `ERROR: ` and the help on stderr, exit 1.
"""

from __future__ import annotations

import copy
import io
import os
import select
import socket
import ssl
import sys
import termios
import time
import tty
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO, NoReturn

import click

from receptor._version import __version__
from receptorctl._errors import ControlProtocolError, ReceptorControlError
from receptorctl._status import format_json, status_lines
from receptorctl._wire import shutdown_write
from receptorctl.socket_interface import ReceptorControl

__all__ = ["cli", "main", "run"]

#: What every invocation sends first, byte for byte as upstream.
VERSION_REQUEST = '{"command":"status","requested_fields":["Version"]}'
VERSION_WARNING = "receptorctl and receptor are different versions, they may not be compatible"

_HELP_IN_ARGS = "receptorctl.help_in_args"
_RELAX_REQUIRED = "receptorctl.relax_required"
_STATE_FAILED = 3
_CHUNK = 65536


def _echo(message: str = "", nl: bool = True) -> None:
    click.echo(message, nl=nl)


def _warn(message: str) -> None:
    click.secho(f"Warning: {message}", fg="magenta", err=True)


def _error(message: object) -> None:
    click.secho(f"ERROR: {message}", fg="red", err=True)


def _malformed(what: str, detail: str) -> ControlProtocolError:
    return ControlProtocolError(f"malformed {what} reply from receptor: {detail}")


def _object(reply: Any, what: str) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise _malformed(what, f"expected a JSON object, got {type(reply).__name__}")
    return reply


def _field(reply: dict[str, Any], key: str, what: str) -> Any:
    if key not in reply:
        raise _malformed(what, f"no {key}")
    return reply[key]


class _Session:
    """The `ReceptorControl` of one invocation; checks the daemon version on first use."""

    def __init__(self, control: ReceptorControl) -> None:
        self._control = control
        self._checked = False
        self.daemon_version: Any = "Unknown"

    def control(self) -> ReceptorControl:
        if not self._checked:
            reply = _object(self._control.simple_command(VERSION_REQUEST), "status")
            self.daemon_version = _field(reply, "Version", "status")
            self._checked = True
            if self.daemon_version != __version__:
                _warn(VERSION_WARNING)
        return self._control

    def close(self) -> None:
        self._control.close()


def _control(ctx: click.Context) -> ReceptorControl:
    session = ctx.find_object(_Session)
    if session is None:  # no --socket, but --help among the arguments of a command that ran
        raise click.UsageError("Missing parameter: socket", ctx=ctx)
    return session.control()


class _Group(click.Group):
    """A group that shows its help on `--help` even when `--socket` is missing.

    Without arguments it fails with the help as the message, as upstream does under click 8.2+
    (fixed here so the behaviour does not depend on the installed click).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and not ctx.resilient_parsing:
            raise click.UsageError(ctx.get_help(), ctx=ctx)
        ctx.meta.setdefault(_HELP_IN_ARGS, "--help" in args)
        try:
            return super().parse_args(ctx, list(args))
        except click.MissingParameter:
            if "--help" not in args:
                raise
            ctx.meta[_RELAX_REQUIRED] = True
            return super().parse_args(ctx, list(args))

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        if not ctx.meta.get(_RELAX_REQUIRED):
            return params
        relaxed = []
        for param in params:
            if param.required:
                param = copy.copy(param)
                param.required = False
            relaxed.append(param)
        return relaxed


# The root group has no help text of its own, as upstream: no docstring on the callback.
@click.group(cls=_Group)
@click.pass_context
@click.option(
    "--socket",
    envvar="RECEPTORCTL_SOCKET",
    required=True,
    show_envvar=True,
    help="Control socket address to for the Receptor connection (The default is 'unix:' for a "
    "Unix socket, use 'tcp://' for a TCP socket)",
)
@click.option(
    "--config",
    "-c",
    default=None,
    envvar="RECEPTORCTL_CONFIG",
    required=False,
    show_envvar=True,
    help="Config filename configured for receptor",
)
@click.option(
    "--tls-client",
    "tlsclient",
    default=None,
    envvar="RECEPTORCTL_TLSCLIENT",
    required=False,
    show_envvar=True,
    help="TLS client name specified in config",
)
@click.option(
    "--rootcas",
    default=None,
    help="Root CA bundle to use instead of system trust when connecting with tls",
)
@click.option("--key", default=None, help="Client private key filename")
@click.option("--cert", default=None, help="Client certificate filename")
@click.option(
    "--insecureskipverify",
    default=False,
    help="Accept any server cert",
    show_default=True,
)
def cli(
    ctx: click.Context,
    socket: str | None,
    config: str | None,
    tlsclient: str | None,
    rootcas: str | None,
    key: str | None,
    cert: str | None,
    insecureskipverify: bool,
) -> None:
    if socket is None:  # only when --help was asked for
        return
    session = _Session(
        ReceptorControl(
            socket,
            config=config,
            tlsclient=tlsclient,
            rootcas=rootcas,
            key=key,
            cert=cert,
            insecureskipverify=insecureskipverify,
        )
    )
    ctx.obj = session
    ctx.call_on_close(session.close)
    if not ctx.meta.get(_HELP_IN_ARGS):
        session.control()


@cli.command(help="Show the status of the Receptor network.")
@click.pass_context
@click.option("--json", "printjson", help="Print as JSON", is_flag=True)
def status(ctx: click.Context, printjson: bool) -> None:
    """`status`: the table of spec/control.md §4.4, or the reply as indented JSON."""
    reply = _control(ctx).simple_command("status")
    if printjson:
        _echo(format_json(reply))
        return
    for line in status_lines(reply):
        _echo(line)


@cli.command(help="Ping a Receptor node.")
@click.pass_context
@click.argument("node")
@click.option("--count", default=4, help="Number of pings to send", show_default=True)
@click.option("--delay", default=1.0, help="Time to wait between pings", show_default=True)
def ping(ctx: click.Context, node: str, count: int, delay: float) -> None:
    """`ping NODE`: one line per ping; exit 2 if any failed."""
    rc = _control(ctx)
    failed = False
    for i in range(count):
        reply = _object(rc.simple_command(f"ping {node}"), "ping")
        if reply.get("Success"):
            source, took = _field(reply, "From", "ping"), _field(reply, "TimeStr", "ping")
            _echo(f"Reply from {source} in {took}")
        else:
            failed = True
            error = _field(reply, "Error", "ping")
            if "From" in reply and "TimeStr" in reply:
                _error(f"{error} from {reply['From']} in {reply['TimeStr']}")
            else:
                _error(error)
        if i < count - 1:
            time.sleep(delay)
    if failed:
        sys.exit(2)


@cli.command(help="Reload receptor configuration.")
@click.pass_context
def reload(ctx: click.Context) -> None:
    """`reload`: exit 3 or 4 for the daemon's ERRORCODE 3 or 4, 5 for any other failure."""
    reply = _object(_control(ctx).simple_command("reload"), "reload")
    if reply.get("Success"):
        _echo("Reload successful")
        return
    error = _field(reply, "Error", "reload")
    _error(error)
    text = str(error)
    sys.exit(3 if "ERRORCODE 3" in text else 4 if "ERRORCODE 4" in text else 5)


@cli.command(help="Do a traceroute to a Receptor node.")
@click.pass_context
@click.argument("node")
def traceroute(ctx: click.Context, node: str) -> None:
    """`traceroute NODE`: hops in order; a failed hop goes to stderr."""
    reply = _object(_control(ctx).simple_command(f"traceroute {node}"), "traceroute")
    hops = []
    for index, hop in reply.items():
        try:
            number = int(index)
        except ValueError:
            raise _malformed("traceroute", f"hop index {index!r}") from None
        hop = _object(hop, "traceroute")
        _field(hop, "From", "traceroute")
        _field(hop, "TimeStr", "traceroute")
        hops.append((number, index, hop))
    for _, index, hop in sorted(hops, key=lambda h: h[0]):
        if "Error" in hop:
            _error(f"{index}: Error {hop['Error']} from {hop['From']} in {hop['TimeStr']}")
        else:
            _echo(f"{index}: {hop['From']} in {hop['TimeStr']}")


@cli.command(help="Connect the local terminal to a Receptor service on a remote node.")
@click.pass_context
@click.argument("node")
@click.argument("service")
@click.option("--raw", "-r", default=False, is_flag=True, help="Set terminal to raw mode")
@click.option(
    "--tls-client",
    "tlsclient",
    type=str,
    default="",
    help="TLS client config name used when connecting to remote node",
)
def connect(ctx: click.Context, node: str, service: str, raw: bool, tlsclient: str) -> None:
    """`connect NODE SERVICE`: a byte pipe between stdin/stdout and the remote service."""
    rc = _control(ctx)
    rc.connect_to_service(node, service, tlsclient)
    sock = rc._detach()
    try:
        _pipe(sock, sys.stdin.fileno(), sys.stdout.buffer, raw)
    finally:
        sock.close()


def _pipe(sock: socket.socket, stdin_fd: int, stdout: BinaryIO, raw: bool) -> None:
    """Copy stdin to the socket and the socket to stdout.

    On a terminal this ends at the end of either side (Ctrl-D ends the session, as upstream),
    restores the terminal and prints a newline. Otherwise the end of stdin half-closes the
    connection and the remote output is copied to its end.
    """
    if not os.isatty(stdin_fd):
        _copy_both_ways(sock, stdin_fd, stdout, stop_at_stdin_end=False)
        return
    saved = termios.tcgetattr(stdin_fd)
    try:
        if raw:
            tty.setraw(stdin_fd, termios.TCSAFLUSH)
            attrs = termios.tcgetattr(stdin_fd)
            attrs[3] &= ~termios.ISIG
            termios.tcsetattr(stdin_fd, termios.TCSAFLUSH, attrs)
        _copy_both_ways(sock, stdin_fd, stdout, stop_at_stdin_end=True)
    finally:
        termios.tcsetattr(stdin_fd, termios.TCSAFLUSH, saved)
        _echo()


def _copy_both_ways(
    sock: socket.socket, stdin_fd: int, stdout: BinaryIO, *, stop_at_stdin_end: bool
) -> None:
    sources: list[Any] = [sock, stdin_fd]
    while True:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            readable = [sock]
        else:
            readable, _, _ = select.select(sources, [], [])
        for source in readable:
            if source is sock:
                data = sock.recv(4096)
                if not data:
                    return
                stdout.write(data)
                stdout.flush()
                continue
            data = os.read(stdin_fd, 4096)
            if data:
                sock.sendall(data)
            elif stop_at_stdin_end:
                return
            else:
                shutdown_write(sock)
                sources.remove(stdin_fd)


@cli.group(cls=_Group, help="Commands related to unit-of-work processing")
def work() -> None:
    """The `work` commands."""


@cli.command(help="Show version information for receptorctl and the receptor node")
@click.pass_context
def version(ctx: click.Context) -> None:
    """`version`: ours and the daemon's."""
    _control(ctx)
    session = ctx.find_object(_Session)
    _echo(f"receptorctl  {__version__}")
    _echo(f"receptor     {session.daemon_version if session else 'Unknown'}")


@work.command(name="list", help="List known units of work.")
@click.option("--quiet", "-q", is_flag=True, help="Only list unit IDs with no detail")
@click.option(
    "--node",
    default=None,
    type=str,
    help="Receptor node to list work from. Defaults to the local node.",
)
@click.option(
    "--unit_id",
    type=str,
    required=False,
    default="",
    help="Only show detail for a specific unit id",
)
@click.option(
    "--tls-client",
    "tlsclient",
    type=str,
    default="",
    help="TLS client config name used when connecting to remote node",
)
@click.pass_context
def list_units(
    ctx: click.Context, unit_id: str, node: str | None, tlsclient: str, quiet: bool
) -> None:
    """`work list`: the units as JSON, or only their IDs; `--node` asks another node."""
    rc = _control(ctx)
    if node:
        rc.connect_to_service(node, "control", tlsclient)
        rc.handshake()
    reply = rc.simple_command("work list" + (f" {unit_id}" if unit_id else ""))
    if quiet:
        for unit in _object(reply, "work list"):
            _echo(unit)
    else:
        _echo(format_json(reply))


@work.command(help="Submit a new unit of work.")
@click.pass_context
@click.argument("worktype", type=str, required=True)
@click.option(
    "--node",
    type=str,
    help="Receptor node to run the work on. Defaults to the local node.",
)
@click.option(
    "--payload",
    "-p",
    type=str,
    help="File containing unit of work data. Use - for stdin.",
)
@click.option(
    "--payload-literal",
    "-l",
    type=str,
    help="Use the command line string as the literal unit of work data.",
)
@click.option("--no-payload", "-n", is_flag=True, help="Send an empty payload.")
@click.option(
    "--tls-client",
    "tlsclient",
    type=str,
    default="",
    help="TLS client used when submitting work to a remote node",
)
@click.option(
    "--ttl",
    type=str,
    default="",
    help="Time to live until remote work must start, e.g. 1h20m30s or 30m10s",
)
@click.option("--signwork", help="Digitally sign remote work submissions", is_flag=True)
@click.option(
    "--follow",
    "-f",
    help="Remain attached to the job and print its results to stdout",
    is_flag=True,
)
@click.option("--rm", help="Release unit after completion", is_flag=True)
@click.option(
    "--param",
    "-a",
    help="Additional Receptor parameter (key=value format)",
    multiple=True,
)
@click.argument("cmdparams", type=str, required=False, nargs=-1)
def submit(
    ctx: click.Context,
    worktype: str,
    node: str | None,
    payload: str | None,
    no_payload: bool,
    payload_literal: str | None,
    tlsclient: str,
    ttl: str,
    signwork: bool,
    follow: bool,
    rm: bool,
    param: tuple[str, ...],
    cmdparams: tuple[str, ...],
) -> None:
    """`work submit`: exit 1 for a payload problem, 101 if the submission fails."""
    given = sum(1 for p in (payload, no_payload, payload_literal) if p)
    if given < 1:
        _error("Must provide one of --payload, --no-payload or --payload-literal.")
        sys.exit(1)
    if given > 1:
        _error("Cannot provide more than one of --payload, --no-payload and --payload-literal.")
        sys.exit(1)
    if rm and not follow:
        _warn("using --rm without --follow. Unit results will never be seen.")
    data: bytes | BinaryIO
    if payload_literal:
        data = f"{payload_literal}\n".encode()
    elif no_payload:
        data = b""
    elif payload == "-":
        data = sys.stdin.buffer
    else:
        try:
            data = open(str(payload), "rb")  # noqa: SIM115 - closed by the process exit
        except Exception as e:
            _error(f"Failed to load payload file: {e}")
            sys.exit(1)
    unit_id = None
    try:
        params = _work_params(param, cmdparams)
        reply = _object(
            _control(ctx).submit_work(
                worktype,
                data,
                node=node or None,
                tlsclient=tlsclient,
                ttl=ttl,
                signwork=signwork,
                params=params,
            ),
            "work submit",
        )
        result = _field(reply, "result", "work submit")
        unit_id = _field(reply, "unitid", "work submit")
        if follow:
            _print_results(ctx, unit_id)
        else:
            _echo(f"Result: {result}")
            _echo(f"Unit ID: {unit_id}")
    except Exception as e:
        _error(e)
        sys.exit(101)
    finally:
        if rm and unit_id:
            _on_units(ctx, "release", [unit_id])


def _work_params(param: Iterable[str], cmdparams: Sequence[str]) -> dict[str, str]:
    """`--param k=v` pairs, with the positional command parameters appended to `params`."""
    params = {}
    for item in param:
        name, equals, value = item.partition("=")
        if not equals:
            raise ReceptorControlError(f"--param {item!r} is not in key=value format")
        params[name] = value
    if cmdparams:
        given = [params["params"]] if "params" in params else []
        params["params"] = " ".join([*given, *cmdparams])
    return params


@work.command(help="Get results for a previously or currently running unit of work.")
@click.pass_context
@click.argument("unit_id", type=str, required=True)
def results(ctx: click.Context, unit_id: str) -> None:
    """`work results UNIT_ID`: the unit's output; exit 1 if the unit failed."""
    _print_results(ctx, unit_id)


def _print_results(ctx: click.Context, unit_id: str) -> None:
    rc = _control(ctx)
    stream = rc.get_work_results(unit_id)
    stdout = sys.stdout.buffer
    with stream:
        while chunk := stream.read1(_CHUNK):
            stdout.write(chunk)
            stdout.flush()
    status = _object(rc.simple_command(f"work status {unit_id}"), "work status")
    if status.get("State", 0) == _STATE_FAILED:
        _error(f"Remote unit failed: {status.get('Detail', 'Unknown')}\n")
        sys.exit(1)


def _on_units(ctx: click.Context, op: str, unit_ids: Iterable[str]) -> None:
    """Send `work <op> <id>` for each unit and print `(<id>, <outcome>)`; stop at an error."""
    rc = _control(ctx)
    for unit_id in unit_ids:
        try:
            reply = _object(rc.simple_command(f"work {op} {unit_id}"), f"work {op}")
            if not reply:
                raise _malformed(f"work {op}", "an empty object")
            outcome, subject = next(iter(reply.items()))
            _echo(f"({subject}, {outcome})")
        except Exception as e:
            _error(f"{unit_id}: ERROR: {e}")
            sys.exit(1)


@work.command(help="Cancel (kill) one or more units of work.")
@click.argument("unit_ids", nargs=-1)
@click.pass_context
def cancel(ctx: click.Context, unit_ids: tuple[str, ...]) -> None:
    """`work cancel UNIT_ID…`."""
    if not unit_ids:
        _warn("No unit IDs supplied: Not doing anything")
        return
    _echo("Cancelled:")
    _on_units(ctx, "cancel", unit_ids)


@work.command(help="Release (delete) one or more units of work.")
@click.option(
    "--force",
    help="Delete locally even if we can't reach the remote node",
    is_flag=True,
)
@click.option("--all", "release_all", help="Delete all work units", is_flag=True)
@click.argument("unit_ids", nargs=-1)
@click.pass_context
def release(ctx: click.Context, force: bool, release_all: bool, unit_ids: tuple[str, ...]) -> None:
    """`work release [--force] [--all] UNIT_ID…`."""
    if not unit_ids and not release_all:
        _warn("No unit IDs supplied: Not doing anything")
        return
    op = "force-release" if force else "release"
    _echo("Released:")
    if release_all:
        units = _object(_control(ctx).simple_command("work list"), "work list")
        _on_units(ctx, op, list(units))
    else:
        _on_units(ctx, op, unit_ids)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run `receptorctl` with `argv` (default: the process arguments) and exit.

    With explicit `argv` the program is called `receptorctl` in messages; otherwise click
    derives the name from how the process was started.
    """
    try:
        if argv is None:
            cli.main(standalone_mode=False)
        else:
            cli.main(list(argv), prog_name="receptorctl", standalone_mode=False)
    except click.exceptions.Abort:
        pass
    except BrokenPipeError as e:
        _error(e)
        _silence_stdout()
        sys.exit(1)
    except Exception as e:
        _error(e)
        sys.exit(1)
    sys.exit(0)


def _silence_stdout() -> None:
    """Stop the interpreter from failing again on the broken stdout when it exits."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


#: Upstream's name for the entry point.
run = main
