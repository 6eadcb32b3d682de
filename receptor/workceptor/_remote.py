"""Remote work units: run a unit on another node and mirror it here (work.md §6).

A submit whose node is not this one makes a local unit of type ``remote``. It starts the
unit on the target through the target's mesh ``control`` service, then mirrors the target's
status and ``stdout`` into the local unit, resuming from the local ``stdout`` size after any
interruption or restart. Every exchange is upstream's control protocol
(``_remote_client.py``), so the target can be an upstream Go node and an upstream node can
send work to us.

Where we differ from upstream, on purpose:

* Completion is noticed at once. The target closes a ``work results`` stream when its unit
  is complete; when that happens the status is asked for immediately instead of at the next
  one-second poll (the protocol is unchanged: the same commands, only sooner).
* A unit the target reports Canceled ends here too, once its output is copied (upstream
  keeps polling a Canceled unit until it is released).
* ``work release`` of a unit whose target no longer knows it, or that never started, succeeds
  locally; the reason is logged.
* An unparsable ``ttl`` is refused before anything is created (upstream leaves a unit
  behind).
* A unit that already failed before it ever started (cancelled locally, expired) keeps its
  detail across a restart instead of becoming "Failed to restart".
* Status requests go over control sessions kept open per target node
  (:meth:`RemoteWorkType.exchange`) instead of one connection per unit: every connection
  is a QUIC and TLS handshake on both nodes. Upstream's target sees the same commands,
  only more of them on one connection (its control sessions allow that).
* After the target confirms a cancel, its status is read on the same session, so the
  Canceled state is here before the client's next request, as the golden transcript
  shows it.
"""

import os
import shutil
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from receptor._errors import ReceptorError
from receptor._goduration import parse_duration
from receptor._gotime import format_rfc3339nano, now, parse_rfc3339
from receptor._log import logger
from receptor.workceptor._remote_client import (
    Backoff,
    RemoteControl,
    RemoteProtocolError,
    RemoteUnitGone,
)
from receptor.workceptor._signing import SignatureError
from receptor.workceptor._status import CANCELED, FAILED, Status, is_complete
from receptor.workceptor._unit import WorkError, WorkType, WorkUnit, remove_unit_dir

if TYPE_CHECKING:
    from receptor.netceptor import Netceptor
    from receptor.netceptor._tls_registry import TLSRegistry
    from receptor.workceptor._workceptor import Workceptor

#: ExtraData ``Expiration`` when there is no ttl (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"
#: The first start (and a cancel/release) is tried while the client waits; this long at most.
FIRST_ATTEMPT_TIMEOUT = 10.0
#: Dial timeout of background attempts.
DIAL_TIMEOUT = 20.0
#: How often the target's status is asked for while nothing else prompts it (upstream: 1 s).
STATUS_PERIOD = 1.0

#: Status polls without output growth, after the target's unit ended, before the results
#: stream is reopened.
STALL_POLLS = 3

#: Idle control sessions kept per target node (and TLS client), and for how long.
IDLE_SESSIONS = 8
IDLE_SESSION_SECONDS = 10.0

#: What a failed connection attempt raises (TLS failures are ReceptorErrors).
_CONNECT_ERRORS = (OSError, ReceptorError)

_T = TypeVar("_T")


def _is_tls_failure(err: BaseException) -> bool:
    from receptor.netceptor.tls import TLSPeerError

    return isinstance(err, TLSPeerError) or "CRYPTO_ERROR" in str(err)


def _go_stamp(text: str) -> str:
    """``Mon Jan 2 15:04:05`` in local time, as upstream writes an expiry."""
    unix_ns, _ = parse_rfc3339(text)
    moment = datetime.fromtimestamp(unix_ns / 1e9).astimezone()
    return f"{moment:%a %b} {moment.day} {moment:%H:%M:%S}"


class RemoteWorkType(WorkType):
    """The ``remote`` work type: registered on every node, never advertised."""

    name = "remote"
    advertise = False

    def __init__(self, netceptor: "Netceptor", tls: "TLSRegistry") -> None:
        self.netceptor = netceptor
        self.tls = tls
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._sessions: set[RemoteControl] = set()
        #: Idle sessions by (node, tlsclient), each with the time it was given back.
        self._idle: dict[tuple[str, str], list[tuple[float, RemoteControl]]] = {}
        self._reaper: threading.Thread | None = None

    def new_unit(self, manager: "Workceptor", unit_id: str) -> "RemoteUnit":
        return RemoteUnit(manager, unit_id, self)

    def submit(
        self,
        manager: "Workceptor",
        node: str,
        work_type: str,
        params: dict[str, str],
        tlsclient: str,
        ttl: str,
        sign_work: bool,
    ) -> "RemoteUnit":
        """Allocate the local ``remote`` unit of a submit to ``node`` (work.md §6.1)."""
        if tlsclient:
            try:
                self.tls.client(tlsclient)
            except ReceptorError as err:
                raise WorkError(str(err)) from None
        elif any(key.lower().startswith("secret_") for key in params):
            raise WorkError("cannot send secrets over a non-TLS connection")
        expiration = ZERO_TIME
        if ttl:
            try:
                duration_ns = parse_duration(ttl)
            except ValueError as err:
                logger.error(
                    "Failed to parse provided ttl -- valid examples include '1.5h', '30m', '30m10s'"
                )
                raise WorkError(str(err)) from None
            stamp, offset = now()
            expiration = format_rfc3339nano((stamp + duration_ns, offset))
            signer = manager.signer
            if sign_work and signer is not None and duration_ns / 1e9 > signer.expiration:
                logger.warning("json web token expires before ttl")
        unit = RemoteUnit(manager, manager.new_unit_id(), self)
        extra = {
            "RemoteNode": node,
            "RemoteWorkType": work_type,
            "RemoteParams": dict(params),
            "RemoteUnitID": "",
            "RemoteStarted": False,
            "LocalCancelled": False,
            "LocalReleased": False,
            "SignWork": sign_work,
            "TLSClient": tlsclient,
            "Expiration": expiration,
        }
        unit.save(state=0, detail="Unit Created", stdout_size=0, extra_data=extra)
        manager.add_unit(unit)
        return unit

    # ------------------------------------------------------------------ sessions

    def open_session(self, node: str, tlsclient: str, timeout: float) -> RemoteControl:
        """A control session with ``node``'s mesh ``control`` service (work.md §6.2)."""
        tls = self.tls.client(tlsclient) if tlsclient else None

        def dial() -> Any:
            return self.netceptor.dial(node, "control", tls=tls, timeout=timeout)

        session = RemoteControl.open(dial, node)
        with self._lock:
            if self.stopping.is_set():
                session.close()
                raise ConnectionAbortedError("the daemon is stopping")
            self._sessions.add(session)
        return session

    def close_session(self, session: RemoteControl) -> None:
        with self._lock:
            self._sessions.discard(session)
        session.close()

    def exchange(
        self,
        node: str,
        tlsclient: str,
        timeout: float,
        action: "Callable[[RemoteControl], _T]",
    ) -> _T:
        """``action(session)`` on an idle session with ``node`` or a new one.

        The session goes back to the idle pool after a complete exchange (an ``ERROR``
        reply included: the session is still in step), and is closed after anything else.
        An idle session that turns out to be dead (the target restarted) is replaced by a
        new one at once; a new session's failure is the caller's to handle.
        """
        key = (node, tlsclient)
        if node not in self.netceptor.routes():
            self._drop_idle(key)  # the target is gone: its sessions are dead or dying
        while True:
            session = self._take_idle(key)
            reused = session is not None
            if session is None:
                session = self.open_session(node, tlsclient, timeout)
            try:
                result = action(session)
            except RemoteUnitGone:
                self._give_back(key, session)
                raise
            except _CONNECT_ERRORS:
                self.close_session(session)
                if reused:
                    continue
                raise
            except BaseException:
                self.close_session(session)
                raise
            self._give_back(key, session)
            return result

    def _take_idle(self, key: tuple[str, str]) -> RemoteControl | None:
        with self._lock:
            idle = self._idle.get(key)
            if not idle:
                return None
            _, session = idle.pop()
            return session

    def _drop_idle(self, key: tuple[str, str]) -> None:
        with self._lock:
            idle = self._idle.pop(key, [])
        for _, session in idle:
            self.close_session(session)

    def _give_back(self, key: tuple[str, str], session: RemoteControl) -> None:
        with self._lock:
            if not self.stopping.is_set():
                idle = self._idle.setdefault(key, [])
                if len(idle) < IDLE_SESSIONS:
                    idle.append((time.monotonic(), session))
                    if self._reaper is None:
                        self._reaper = threading.Thread(
                            target=self._reap, name="remote-sessions-reaper", daemon=True
                        )
                        self._reaper.start()
                    return
        self.close_session(session)

    def _reap(self) -> None:
        """Close sessions idle for :data:`IDLE_SESSION_SECONDS`; ends when none are left."""
        finished = False
        while not finished and not self.stopping.wait(IDLE_SESSION_SECONDS / 4):
            deadline = time.monotonic() - IDLE_SESSION_SECONDS
            with self._lock:
                expired = []
                for key, idle in list(self._idle.items()):
                    expired += [session for since, session in idle if since < deadline]
                    idle[:] = [(since, session) for since, session in idle if since >= deadline]
                    if not idle:
                        del self._idle[key]
                # The next session given back starts a new reaper.
                finished = not self._idle
                if finished:
                    self._reaper = None
            for session in expired:
                self.close_session(session)

    def stop(self) -> None:
        """Unblock every remote unit's threads (they end; the units resume at restart)."""
        self.stopping.set()
        with self._lock:
            sessions = list(self._sessions)
            self._idle.clear()
        for session in sessions:
            session.close()


class RemoteUnit(WorkUnit):
    """The local mirror of a unit that runs on another node."""

    def __init__(self, manager: "Workceptor", unit_id: str, work_type: RemoteWorkType) -> None:
        super().__init__(manager, unit_id, "remote")
        self.work_type = work_type
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        #: Set to cut a wait short: a cancel or release arrived, or the daemon stops.
        self._wake = threading.Event()
        #: A cancel/release the target has not confirmed yet (sent again in the background).
        self._pending: str | None = None
        #: The target's last status: (State, StdoutSize).
        self._remote: tuple[int, int] | None = None
        #: The session of the running ``work results`` mirror stream, if any.
        self._results_session: RemoteControl | None = None

    # ------------------------------------------------------------------ status helpers

    def extra(self) -> dict[str, Any]:
        extra = self.status.extra_data
        return dict(extra) if isinstance(extra, dict) else {}

    def save_extra(self, **fields: Any) -> None:
        def change(status: Status) -> None:
            extra = dict(status.extra_data) if isinstance(status.extra_data, dict) else {}
            extra.update(fields)
            status.extra_data = extra

        try:
            self.update(change)
        except FileNotFoundError:
            if not self.released:
                raise

    def api_extra_data(self, status: Status) -> Any:
        """ExtraData through the API: ``secret_*`` parameters are not shown (work.md §3)."""
        extra = status.extra_data
        if not isinstance(extra, dict):
            return extra
        shown = dict(extra)
        params = shown.get("RemoteParams")
        if isinstance(params, dict):
            shown["RemoteParams"] = {
                key: value for key, value in params.items() if not key.lower().startswith("secret_")
            }
        return shown

    def _local_size(self) -> int:
        try:
            return os.path.getsize(os.path.join(self.dir, "stdout"))
        except OSError:
            return 0

    def _signature(self) -> str | None:
        extra = self.extra()
        if not extra.get("SignWork"):
            return None
        signer = self.manager.signer
        if signer is None:
            raise SignatureError("cannot sign work: signing key is empty")
        return signer.sign(str(extra.get("RemoteNode", "")))

    def _target(self) -> tuple[str, str]:
        """The target node and the TLS client config to reach it with."""
        extra = self.extra()
        return str(extra.get("RemoteNode", "")), str(extra.get("TLSClient", ""))

    def _open(self, timeout: float) -> RemoteControl:
        return self.work_type.open_session(*self._target(), timeout)

    def _exchange(self, timeout: float, action: "Callable[[RemoteControl], _T]") -> _T:
        """One request on a pooled session with the target (status requests)."""
        return self.work_type.exchange(*self._target(), timeout, action)

    def _stopping(self) -> bool:
        return self.work_type.stopping.is_set() or self.released

    def _sleep(self, seconds: float) -> None:
        """Wait, cut short by a cancel, a release or the daemon stopping."""
        if seconds > 0:
            self._wake.wait(seconds)
        self._wake.clear()

    def _log_connect_error(self, err: BaseException) -> None:
        logger.debug("Connection to %s failed with error: %s", self.extra().get("RemoteNode"), err)

    # ------------------------------------------------------------------ start

    def _start_once(self, timeout: float) -> None:
        """One start exchange (work.md §6.3); raises on failure, records the remote ID."""
        extra = self.extra()
        params = extra.get("RemoteParams")
        request: dict[str, object] = dict(params) if isinstance(params, dict) else {}
        request.update(
            command="work",
            subcommand="submit",
            node=extra.get("RemoteNode", ""),
            worktype=extra.get("RemoteWorkType", ""),
            tlsclient=extra.get("TLSClient", ""),
        )
        signature = self._signature()
        if signature:
            request["signature"] = signature
        session = self._open(timeout)
        try:
            with open(os.path.join(self.dir, "stdin"), "rb") as stdin:
                try:
                    session.submit(request, stdin)
                finally:
                    if session.remote_unit_id:
                        self.save_extra(RemoteUnitID=session.remote_unit_id)
        finally:
            self.work_type.close_session(session)
        self.save_extra(RemoteStarted=True)

    def start(self) -> str:
        """The first attempt runs while the client waits; then the rest in the background."""
        try:
            self._start_once(FIRST_ATTEMPT_TIMEOUT)
        except (RemoteProtocolError, SignatureError) as err:
            raise WorkError(str(err)) from None
        except _CONNECT_ERRORS as err:
            if _is_tls_failure(err):
                # A connection-level failure, as upstream answers it (work.md §6.2, §6.3):
                # the submit says Job Submitted and the unit fails with the TLS error;
                # nothing is retried.
                self._log_connect_error(err)
                self.save_basic(FAILED, f"TLS error connecting to remote service: {err}", 0)
                return "Job Submitted"
            self._log_connect_error(err)
            self._spawn()
            return "Job Submitted"
        self._spawn()
        return "Job Started"

    def _expired(self) -> bool:
        expiration = str(self.extra().get("Expiration") or ZERO_TIME)
        if expiration == ZERO_TIME:
            return False
        try:
            unix_ns, _ = parse_rfc3339(expiration)
        except ValueError:
            return False
        if time.time_ns() < unix_ns:
            return False
        self.save_basic(FAILED, f"Work unit expired on {_go_stamp(expiration)}")
        return True

    def _seconds_to_expiry(self) -> float:
        expiration = str(self.extra().get("Expiration") or ZERO_TIME)
        if expiration == ZERO_TIME:
            return float("inf")
        try:
            unix_ns, _ = parse_rfc3339(expiration)
        except ValueError:
            return float("inf")
        return max(0.0, (unix_ns - time.time_ns()) / 1e9)

    def _start_with_retries(self) -> bool:
        """Background start attempts until one works; False if the unit ended instead."""
        backoff = Backoff()
        while not self._stopping():
            extra = self.extra()
            if extra.get("LocalCancelled") or extra.get("LocalReleased"):
                return False
            if self._expired():
                return False
            self._sleep(min(backoff(), self._seconds_to_expiry()))
            if self._stopping() or self._expired():
                return False
            extra = self.extra()
            if extra.get("LocalCancelled") or extra.get("LocalReleased"):
                return False
            try:
                self._start_once(DIAL_TIMEOUT)
            except (RemoteProtocolError, SignatureError) as err:
                self.save_basic(FAILED, f"Error starting worker: {err}", 0)
                return False
            except _CONNECT_ERRORS as err:
                if _is_tls_failure(err):
                    self.save_basic(FAILED, f"TLS error connecting to remote service: {err}", 0)
                    return False
                self._log_connect_error(err)
                continue
            return True
        return False

    # ------------------------------------------------------------------ background life

    def _spawn(self) -> None:
        """Run (or wake) the unit's background thread."""
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                self._wake.set()
                return
            self._thread = threading.Thread(
                target=self._life, name=f"remote unit {self.id}", daemon=True
            )
            self._thread.start()

    def _life(self) -> None:
        try:
            if not self.extra().get("RemoteStarted") and not self._start_with_retries():
                return
            while not self._stopping():
                pending = self._pending
                if pending is not None:
                    if not self._retry_command(pending):
                        return
                    continue
                self._monitor()
                if self._pending is None:
                    return
        except Exception:
            logger.exception("Remote work unit %s failed", self.id)

    # ------------------------------------------------------------------ monitoring

    def _finished(self) -> bool:
        """The target's unit is over and all its output is here."""
        if self._remote is None:
            return False
        state, size = self._remote
        return (is_complete(state) or state == CANCELED) and self._local_size() >= size

    def _monitor(self) -> None:
        """Mirror the target's status and stdout until done (work.md §6.4)."""
        self._remote = None
        done = threading.Event()
        poll_now = threading.Event()
        mirror = threading.Thread(
            target=self._stdout_mirror,
            args=(done, poll_now),
            name=f"remote stdout {self.id}",
            daemon=True,
        )
        mirror.start()
        try:
            self._status_mirror(done, poll_now)
        finally:
            done.set()
            session = self._results_session
            if session is not None:
                self.work_type.close_session(session)
            mirror.join()
            self._results_session = None

    def _status_mirror(self, done: threading.Event, poll_now: threading.Event) -> None:
        remote_id = str(self.extra().get("RemoteUnitID", ""))
        backoff = Backoff()
        stalled: tuple[int, int] = (-1, 0)
        try:
            while not self._stopping() and self._pending is None:
                try:
                    remote = self._exchange(DIAL_TIMEOUT, lambda session: session.status(remote_id))
                except RemoteUnitGone:
                    if not self.extra().get("LocalReleased"):
                        self.save_basic(FAILED, "Remote work unit is gone")
                    return
                except RemoteProtocolError as err:
                    logger.error("Remote work unit %s: status: %s", self.id, err)
                    return
                except (*_CONNECT_ERRORS, ValueError) as err:
                    self._log_connect_error(err)
                    self._sleep(backoff())
                    continue
                backoff.reset()
                self._copy_status(remote)
                if self._finished():
                    return
                stalled = self._check_stall(stalled)
                poll_now.wait(STATUS_PERIOD)
                poll_now.clear()
        finally:
            done.set()

    def _check_stall(self, stalled: tuple[int, int]) -> tuple[int, int]:
        """(local size, polls without growth) once the target's unit is over.

        The target has all of the output then, so a results stream that brings nothing
        for a few polls is stuck (a lost connection the transport has not noticed yet):
        close it, and the stdout mirror resumes from the local size on a new one.
        """
        if self._remote is None or not (
            is_complete(self._remote[0]) or self._remote[0] == CANCELED
        ):
            return (-1, 0)
        size = self._local_size()
        polls = stalled[1] + 1 if size == stalled[0] else 0
        if polls >= STALL_POLLS:
            session = self._results_session
            if session is not None:
                logger.debug("Remote work unit %s: results stream stalled; reopening", self.id)
                self.work_type.close_session(session)
            polls = 0
        return (size, polls)

    def _copy_status(self, remote: dict[str, Any]) -> None:
        state, detail, size = remote.get("State"), remote.get("Detail"), remote.get("StdoutSize")
        if not isinstance(state, int) or not isinstance(size, int) or not isinstance(detail, str):
            return
        self._remote = (state, size)
        current = self.status
        if (current.state, current.detail, current.stdout_size) != (state, detail, size):
            self.save_basic(state, detail, size)

    def _stdout_mirror(self, done: threading.Event, poll_now: threading.Event) -> None:
        remote_id = str(self.extra().get("RemoteUnitID", ""))
        backoff = Backoff()
        path = os.path.join(self.dir, "stdout")
        while not done.is_set() and not self._stopping():
            if self._finished():
                poll_now.set()
                return
            try:
                session = self._open(DIAL_TIMEOUT)
            except _CONNECT_ERRORS as err:
                self._log_connect_error(err)
                done.wait(backoff())
                continue
            backoff.reset()
            # _monitor ends this stream by closing the session once the status mirror is done.
            self._results_session = session
            if done.is_set():
                self.work_type.close_session(session)
                return
            logger.debug("Remote work unit %s: results stream opened", self.id)
            try:
                with open(path, "ab") as sink:
                    session.results(
                        remote_id,
                        sink.tell(),
                        sink,
                        signature=self._signature(),
                        on_data=self._notify_readers,
                    )
            except RemoteProtocolError as err:
                logger.debug("Remote work unit %s: results: %s", self.id, err)
            except (*_CONNECT_ERRORS, SignatureError) as err:
                self._log_connect_error(err)
            finally:
                self.work_type.close_session(session)
            logger.debug("Remote work unit %s: results stream ended", self.id)
            # The target closes the stream when its unit is complete: look now, not later.
            poll_now.set()
            done.wait(STATUS_PERIOD)

    def _notify_readers(self, _count: int) -> None:
        self.notify_change()

    # ------------------------------------------------------------------ cancel and release

    def _send_command(self, subcommand: str, timeout: float) -> None:
        """Send ``cancel`` / ``release`` / ``force-release`` for the target's unit."""
        remote_id = str(self.extra().get("RemoteUnitID", ""))
        # A new session, not a pooled one: a pooled session to a target that has just gone
        # away would hang until the transport's idle timeout, where a new one fails within
        # ``timeout`` and the command becomes pending at once.
        session = self._open(timeout)
        try:
            session.unit_command(subcommand, remote_id, self._signature())
            if subcommand == "cancel":
                # The target's Canceled state, here before the client's next request.
                try:
                    self._copy_status(session.status(remote_id))
                except (RemoteProtocolError, RemoteUnitGone, OSError) as err:
                    logger.debug("Remote work unit %s: status after cancel: %s", self.id, err)
        finally:
            self.work_type.close_session(session)

    def _retry_command(self, subcommand: str) -> bool:
        """Background retries of an unconfirmed cancel/release; False when the unit ended."""
        backoff = Backoff()
        while not self._stopping():
            try:
                self._send_command(subcommand, DIAL_TIMEOUT)
            except RemoteUnitGone:
                self._pending = None
                self._target_forgot(subcommand)
                return False
            except (RemoteProtocolError, SignatureError) as err:
                logger.error("Remote work unit %s: %s", self.id, err)
                self._pending = None
                return subcommand == "cancel"
            except _CONNECT_ERRORS as err:
                self._log_connect_error(err)
                self._sleep(backoff())
                continue
            self._pending = None
            if subcommand != "cancel":
                self.delete()
                return False
            return True
        return False

    def _target_forgot(self, subcommand: str) -> None:
        """The target no longer knows the unit: a release is complete, a cancel moot."""
        if subcommand == "cancel":
            self.save_basic(FAILED, "Remote work unit is gone")
            return
        logger.info(
            "Remote work unit %s: %s no longer knows unit %s; released locally",
            self.id,
            self.extra().get("RemoteNode"),
            self.extra().get("RemoteUnitID"),
        )
        self.delete()

    def cancel(self) -> str | None:
        """Work.md §6.5: locally if it never started, else ask the target."""
        self.save_extra(LocalCancelled=True)
        if not self.extra().get("RemoteStarted"):
            self._wake.set()
            if not is_complete(self.status.state):
                self.save_basic(FAILED, "Locally Cancelled", 0)
            return None
        try:
            self._send_command("cancel", FIRST_ATTEMPT_TIMEOUT)
        except RemoteUnitGone:
            self._target_forgot("cancel")
            return None
        except (RemoteProtocolError, SignatureError) as err:
            raise WorkError(str(err)) from None
        except _CONNECT_ERRORS as err:
            self._log_connect_error(err)
            self._pending = "cancel"
            self._spawn()
            return "cancel pending"
        self._spawn()  # mirror the target's Canceled state (and the last of its output)
        return None

    def release(self, force: bool) -> str | None:
        """Work.md §6.5; a unit the target has forgotten or never had is released here."""
        self.save_extra(LocalCancelled=True, LocalReleased=True)
        self._wake.set()
        if not self.extra().get("RemoteStarted"):
            self.delete()
            return None
        subcommand = "force-release" if force else "release"
        try:
            self._send_command(subcommand, FIRST_ATTEMPT_TIMEOUT)
        except RemoteUnitGone:
            self._target_forgot(subcommand)
            return None
        except (RemoteProtocolError, SignatureError) as err:
            if not force:
                raise WorkError(str(err)) from None
        except _CONNECT_ERRORS as err:
            self._log_connect_error(err)
            if not force:
                self._pending = subcommand
                self._spawn()
                return "release pending"
        self.delete()
        return None

    def delete(self) -> None:
        """Forget the unit and remove its directory."""
        self.notify_change(released=True)
        self._wake.set()
        try:
            remove_unit_dir(self.dir)
        except OSError:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.manager.forget(self.id)

    # ------------------------------------------------------------------ restart

    def restart(self) -> None:
        """Work.md §6.6: resume what the unit was doing when the daemon stopped."""
        extra = self.extra()
        if not extra.get("RemoteStarted"):
            if is_complete(self.status.state):
                return  # it already failed (cancelled, expired): keep its detail
            raise WorkError("remote work had not previously started")
        if extra.get("LocalReleased"):
            self._pending = "release"
        elif extra.get("LocalCancelled") and not is_complete(self.status.state):
            self._pending = "cancel"
        elif is_complete(self.status.state) and self._local_size() >= self.status.stdout_size:
            return
        self._spawn()


def install(manager: "Workceptor", netceptor: "Netceptor", tls: "TLSRegistry") -> RemoteWorkType:
    """Register the ``remote`` type and the submit hook on ``manager``."""
    work_type = RemoteWorkType(netceptor, tls)
    manager.register(work_type)
    manager.remote_submit = work_type.submit
    return work_type
