"""The children of the local run: each in its own process group, its output prefixed with ``[name]`` on one
``Console``, stopped in reverse start order; one child can be stopped and restarted (``Supervisor.stop`` /
``restart``), and one that crashes after the stack was ready is restarted unless it crashes in a loop
(``restart_crashed``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from localrun.settings import REPO_ROOT, RunError

# A child that dies after the stack was ready is started again; this many deaths within the window are a crash
# loop (a broken model, a port taken), which stops the run with the child's status.
MAX_RESTARTS = 3
RESTART_WINDOW_SECONDS = 60.0


class Console:
    """Serialises lines from the log-pump threads; one ``[name]`` prefix per line, coloured on a terminal."""

    _COLOURS = ("36", "35", "33", "32", "34", "96", "95")

    def __init__(self, stream=sys.stdout) -> None:  # type: ignore[no-untyped-def]
        self.stream = stream
        self.lock = threading.Lock()
        self.colour = stream.isatty() and os.environ.get("NO_COLOR") is None
        self.width = 10
        self._assigned: dict[str, str] = {}

    def _prefix(self, name: str) -> str:
        label = f"[{name}]".ljust(self.width + 2)
        if not self.colour:
            return label
        code = self._assigned.setdefault(name, self._COLOURS[len(self._assigned) % len(self._COLOURS)])
        return f"\033[{code}m{label}\033[0m"

    def line(self, name: str, text: str) -> None:
        with self.lock:
            self.stream.write(f"{self._prefix(name)} {text}\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        self.line("run", text)

    def warn(self, text: str) -> None:
        self.line("run", f"\033[1;33mWARNING: {text}\033[0m" if self.colour else f"WARNING: {text}")


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    stop_signal: int = signal.SIGTERM
    pump: threading.Thread | None = None
    expected_exit: bool = False
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


class Supervisor:
    """Starts children in their own process groups, pumps their output, stops them all."""

    def __init__(self, console: Console, stop_timeout: float) -> None:
        self.console = console
        self.stop_timeout = stop_timeout
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self._stopped: dict[str, Child] = {}  # stopped one at a time with stop(name): restart(name) knows how

    def start(self, name: str, argv: list[str], env: Mapping[str, str], stop_signal: int = signal.SIGTERM) -> Child:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            # Own process group: the terminal's Ctrl-C reaches only us, and we stop each group in order.
            start_new_session=True,
        )
        child = Child(name, process, stop_signal, argv=list(argv), env=dict(env))
        child.pump = threading.Thread(target=self._pump, args=(child,), name=f"log-{name}", daemon=True)
        child.pump.start()
        self.children.append(child)
        self.console.say(f"started {name} (pid {process.pid})")
        return child

    def _pump(self, child: Child) -> None:
        assert child.process.stdout is not None
        for line in child.process.stdout:
            self.console.line(child.name, line.rstrip("\n"))

    def run_once(self, name: str, argv: list[str], env: Mapping[str, str], timeout: float) -> int:
        """Run a command to completion (its output prefixed like the others); returns its exit status."""
        child = self.start(name, argv, env)
        child.expected_exit = True
        try:
            code = child.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._stop_child(child)
            raise RunError(f"{name} did not finish within {timeout:.0f}s") from None
        if child.pump:
            child.pump.join(timeout=5)
        self.children.remove(child)
        return code

    def child(self, name: str) -> Child | None:
        """The running (supervised) child called ``name``."""
        return next((child for child in self.children if child.name == name), None)

    def stop(self, name: str) -> int:
        """Stop one child the way ``stop_all`` does (its stop signal to its process group, SIGKILL after the stop
        timeout) and stop supervising it; returns its exit status (negative: killed by that signal)."""
        child = self.child(name)
        if child is None:
            raise KeyError(f"{name} is not running")
        self.children.remove(child)
        self._stopped[name] = child
        return self._stop_child(child)

    def restart(self, name: str, env: Mapping[str, str] | None = None) -> Child:
        """Start a child again with the same command (stopping it first if it runs), with ``env`` if given, else
        the environment it had."""
        if self.child(name) is not None:
            self.stop(name)
        previous = self._stopped.pop(name, None)
        if previous is None:
            raise KeyError(f"{name} was never started")
        return self.start(name, previous.argv, previous.env if env is None else env, previous.stop_signal)

    def died(self) -> Child | None:
        """The first child that exited on its own, if any."""
        for child in self.children:
            if not child.expected_exit and child.process.poll() is not None:
                return child
        return None

    def stop_all(self) -> None:
        """Stop children in reverse start order: the gateway first, Redis last."""
        for child in reversed(self.children):
            self._stop_child(child)
        self.children.clear()

    def _stop_child(self, child: Child) -> int:
        pgid = child.process.pid
        if child.process.poll() is None:
            _signal_group(pgid, child.stop_signal)
            try:
                child.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.console.warn(f"{child.name} did not stop within {self.stop_timeout:.0f}s; killing it")
                _signal_group(pgid, signal.SIGKILL)
                child.process.wait(timeout=10)
        # Anything the child left behind in its group (workers of a crashed master, say).
        _signal_group(pgid, signal.SIGKILL)
        if child.pump:
            child.pump.join(timeout=5)
        return child.process.returncode


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def restart_crashed(supervisor: Supervisor, dead: Child, crashes: list[float]) -> None:
    """Start ``dead`` again, unless it is crashing in a loop (then RunError). ``crashes``: earlier death times."""
    now = time.monotonic()
    crashes[:] = [moment for moment in crashes if now - moment <= RESTART_WINDOW_SECONDS]
    code = dead.process.returncode
    if len(crashes) >= MAX_RESTARTS:
        raise RunError(
            f"{dead.name} exited unexpectedly with status {code}, "
            f"{len(crashes) + 1} times in {RESTART_WINDOW_SECONDS:.0f}s; not restarting it"
        )
    crashes.append(now)
    supervisor.console.warn(f"{dead.name} exited unexpectedly with status {code}; restarting it")
    supervisor.restart(dead.name)
