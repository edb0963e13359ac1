"""Find the stack's processes by the ports they listen on, and account their CPU time from /proc.

CPU per login is measured from the kernel's own accounting: ``utime + stime`` (fields 14 and 15 of
``/proc/<pid>/stat``) of every process of every service, read before and after a measured batch.
A service is found from its listening port (each SO_REUSEPORT worker holds its own listening socket),
then widened to its supervisor (a parent running the same program) and all descendants, so forked
workers and gunicorn workers are counted together with their master.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
_LISTEN_STATE = "0A"


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    cmdline: str
    cpu_seconds: float


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a service a bench starts itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_process(pid: int) -> ProcessInfo | None:
    """utime+stime of one process in seconds (None when it is gone)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw_cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime = int(fields[11]), int(fields[12])
    cmdline = raw_cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return ProcessInfo(pid=pid, ppid=ppid, cmdline=cmdline, cpu_seconds=(utime + stime) / CLOCK_TICKS)


def all_pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == _LISTEN_STATE and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def listening_pids(port: int) -> set[int]:
    """Processes holding a listening TCP socket on ``port`` (any address)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        return set()
    owners = set()
    for pid in all_pids():
        try:
            descriptors = list((PROC / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in targets:
                    owners.add(pid)
                    break
            except OSError:
                continue
    return owners


def _program_key(cmdline: str) -> str:
    """What identifies 'the same program' for widening to a supervisor: the module or executable."""
    words = cmdline.split()
    if "-m" in words and words.index("-m") + 1 < len(words):
        return words[words.index("-m") + 1]
    for word in words:
        if "gunicorn" in word or "nginx" in word:
            return "gunicorn" if "gunicorn" in word else "nginx"
    return words[0] if words else ""


def service_pids(port: int) -> set[int]:
    """Every process of the service listening on ``port``: listeners, their same-program ancestors, descendants."""
    listeners = listening_pids(port)
    if not listeners:
        return set()
    table = {info.pid: info for pid in all_pids() if (info := read_process(pid)) is not None}
    roots = set()
    for pid in listeners:
        root = pid
        key = _program_key(table[pid].cmdline) if pid in table else ""
        while True:
            parent = table.get(table[root].ppid) if root in table else None
            if parent is None or not key or _program_key(parent.cmdline) != key:
                break
            root = parent.pid
        roots.add(root)
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.add(pid)
        stack.extend(children.get(pid, []))
    return found


def discover(ports: Mapping[str, int]) -> dict[str, set[int]]:
    """``{"recognition": 50052, ...}`` → the pids of each service; a service not listening maps to an empty set."""
    return {name: service_pids(port) for name, port in ports.items()}


def cpu_snapshot(services: Mapping[str, Iterable[int]]) -> dict[str, dict[int, float]]:
    snapshot: dict[str, dict[int, float]] = {}
    for name, pids in services.items():
        snapshot[name] = {}
        for pid in pids:
            info = read_process(pid)
            if info is not None:
                snapshot[name][pid] = info.cpu_seconds
    return snapshot


def cpu_delta(before: Mapping[str, Mapping[int, float]], after: Mapping[str, Mapping[int, float]]) -> dict[str, float]:
    """CPU seconds each service used between two snapshots (processes gone in between count as 0 after)."""
    used = {}
    for name, after_pids in after.items():
        before_pids = before.get(name, {})
        used[name] = round(sum(after_pids.get(pid, 0.0) - before_pids.get(pid, 0.0) for pid in after_pids), 3)
    return used


def cpu_delta_by_process(
    before: Mapping[str, Mapping[int, float]], after: Mapping[str, Mapping[int, float]]
) -> dict[str, dict[int, float]]:
    """CPU seconds per process of each service: shows whether SO_REUSEPORT workers share the load."""
    return {
        name: {pid: round(after_pids[pid] - before.get(name, {}).get(pid, 0.0), 3) for pid in sorted(after_pids)}
        for name, after_pids in after.items()
    }


def parse_vm_rss_kb(status_text: str) -> int | None:
    """The resident set size in kB from the text of ``/proc/<pid>/status`` (its ``VmRSS:`` line); None without one
    (kernel threads and zombies have no VmRSS)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def read_rss_mb(pid: int) -> float | None:
    """Resident memory of one process in MB (MiB, as ``ps`` and ``top`` count); None when it is gone."""
    try:
        status_text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    kilobytes = parse_vm_rss_kb(status_text)
    return None if kilobytes is None else kilobytes / 1024.0


def process_role(info: ProcessInfo, service: Iterable[int]) -> str:
    """``supervisor`` for a service's topmost process (gunicorn master, nginx master, the gRPC supervisor or a
    single server), ``worker`` for a process whose parent belongs to the same service."""
    return "worker" if info.ppid in set(service) else "supervisor"


def rss_snapshot(services: Mapping[str, Iterable[int]]) -> dict[str, dict[int, float]]:
    """RSS in MB of every process of every service (processes gone since discovery are left out)."""
    snapshot: dict[str, dict[int, float]] = {}
    for name, pids in services.items():
        snapshot[name] = {}
        for pid in pids:
            rss = read_rss_mb(pid)
            if rss is not None:
                snapshot[name][pid] = round(rss, 1)
    return snapshot
