"""Finds the server processes listening on a local port and reads their memory, via /proc.

Linux only; anywhere else (or without permission) the report just has no memory figures.
"""

import os
from pathlib import Path

from .shapes import ServerMemory

PROC = Path("/proc")


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (PROC / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN.
            if len(fields) < 10 or fields[3] != "0A":
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def pids_listening_on(port: int) -> list[int]:
    """Every process holding a listening socket on the port (uvicorn --workers: all of them)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        return []
    pids: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in targets:
                    pids.append(int(entry.name))
                    break
        except OSError:
            continue
    return sorted(pids)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of the process, or None if it is gone or unreadable."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time the process has used, or None if it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class MemoryWatch:
    """Samples the summed RSS of the given processes; keeps first, peak and last."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.first: int | None = None
        self.peak: int | None = None
        self.last: int | None = None
        # CPU seconds of the processes at mark_load_start(), and used from then to mark_load_end().
        self.cpu_at_start: float | None = None
        self.cpu_used: float | None = None

    def _cpu(self) -> float | None:
        values = [v for v in (cpu_seconds(pid) for pid in self.pids) if v is not None]
        return sum(values) if values else None

    def mark_load_start(self) -> None:
        self.cpu_at_start = self._cpu()

    def mark_load_end(self) -> None:
        now = self._cpu()
        if now is not None and self.cpu_at_start is not None:
            self.cpu_used = now - self.cpu_at_start

    def sample(self) -> None:
        values = [v for v in (rss_bytes(pid) for pid in self.pids) if v is not None]
        if not values:
            return
        total = sum(values)
        if self.first is None:
            self.first = total
        self.peak = max(self.peak or 0, total)
        self.last = total

    def as_dict(self) -> ServerMemory | None:
        if not self.pids or self.first is None:
            return None

        def mb(value: int | None) -> float | None:
            return None if value is None else round(value / 2**20, 1)

        return {
            "pids": self.pids,
            "rss_mb_start": mb(self.first),
            "rss_mb_peak": mb(self.peak),
            "rss_mb_end": mb(self.last),
            "cpu_seconds_load": None if self.cpu_used is None else round(self.cpu_used, 2),
        }
