"""Durable spool: encoded OTLP requests that could not be exported yet, kept on disk.

Modelled on the OpenTelemetry Collector's file-backed sending queue: each segment file holds one
``ExportLogsServiceRequest`` (the protobuf bytes the exporter would POST, no pickle) behind a small
header with the record count and a CRC32, so a truncated or damaged file is recognised, skipped,
counted and logged. Only the export thread touches the disk.

Several processes may share one directory. Each process (and each forked child) is an *owner* with a
lock file it holds (``flock``) for its lifetime: it sends its own segments, and a segment of another
owner only once that owner's lock is free (the process has exited, even by SIGKILL). A segment is
sent or evicted only under an exclusive ``flock`` on it, and deleted right after, so one segment is
sent by one process; a crash between the answer and the delete can resend it, with the same
``log.record.uid``s, which a backend dedupes. The byte bound is for the whole directory: past it
the oldest segments (of any owner) are evicted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass, field

from .ids import new_uid

try:
    import fcntl
except ImportError:  # Windows: no flock; configure(spool_dir=...) says so
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("sqreen_otel")

MAGIC = b"SQS1"
_HEADER = struct.Struct(">4sBxxxII")  # magic, flags, count, crc32 of the payload
FLAG_MAYBE_DELIVERED = 1
_SEGMENT, _TMP, _OWNER = "seg-", "tmp-", "owner-"
_SCAN_EVERY = 1.0  # seconds: the directory listing is cached this long between writes


@dataclass(frozen=True)
class Segment:
    name: str
    owner: str
    size: int


@dataclass
class Claimed:
    """A segment locked by this process, read and checked; ``done()`` deletes it, ``release()`` keeps it."""

    segment: Segment
    body: bytes
    count: int
    maybe_delivered: bool
    own: bool
    fd: int


@dataclass
class Evicted:
    """Records removed from the spool before they could be sent."""

    own: int = 0  # of this owner's segments (the directory bound)
    own_maybe_delivered: int = 0  # of which an earlier attempt may have reached the backend
    foreign: int = 0  # of other owners' segments
    corrupt_own: int = 0  # of this owner's segments found damaged


@dataclass
class _Listing:
    at: float = -1e9
    segments: list[Segment] = field(default_factory=list)
    total: int = 0


class Spool:
    """One process's view of a spool directory; not thread-safe (the export thread owns it)."""

    def __init__(self, directory: str, max_bytes: int) -> None:
        if fcntl is None:
            raise ValueError("spool_dir needs POSIX file locks (fcntl), not available on this platform")
        self.directory = os.path.abspath(directory)
        self.max_bytes = max_bytes
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            probe = os.path.join(self.directory, f"{_TMP}probe-{os.getpid()}")
            with open(probe, "wb") as f:
                f.write(b"ok")
            os.unlink(probe)
        except OSError as exc:
            raise ValueError(f"spool_dir {directory!r} is not a writable directory: {exc}") from None
        self.recovered = 0  # records of other owners (earlier runs, dead processes) delivered by us
        self.corrupt = 0  # files skipped because damaged or truncated
        self.evicted_foreign = 0
        self._lock_fd = -1
        self._become_owner()

    def _become_owner(self) -> None:
        self.owner = new_uid().replace("-", "")
        self._seq = 0
        self.own: dict[str, tuple[int, bool]] = {}  # our segments on disk: name -> (count, maybe delivered)
        self._listing = _Listing()
        self._lost = Evicted()  # own records gone without us sending them, until take_lost()
        path = os.path.join(self.directory, f"{_OWNER}{self.owner}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd = fd

    def after_fork(self) -> None:
        """In a child: the parent keeps its segments and its lock; the child becomes a new owner."""
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)  # our copy only: the parent's lock stays held
        self._become_owner()

    def close(self) -> None:
        """Release the owner lock: what is left is for the next process to send."""
        if self._lock_fd >= 0:
            if not self.own:  # nothing of ours left: no lock file to leave behind either
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, f"{_OWNER}{self.owner}.lock"))
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = -1

    # -- accounting ------------------------------------------------------------------------------

    def own_records(self) -> int:
        return sum(count for count, _ in self.own.values())

    def take_lost(self) -> Evicted:
        """Own records that left the spool unsent since the last call (evicted by another process, corrupt)."""
        lost, self._lost = self._lost, Evicted()
        return lost

    def stats(self) -> dict[str, int | str]:
        listing = self._listing
        return {
            "dir": self.directory,
            "files": len(listing.segments),
            "bytes": listing.total,
            "records": self.own_records(),
            "recovered": self.recovered,
            "corrupt": self.corrupt,
            "evicted_foreign": self.evicted_foreign,
        }

    # -- listing ---------------------------------------------------------------------------------

    def scan(self, force: bool = False) -> list[Segment]:
        """Segments oldest first (their names start with the time they were written)."""
        now = time.monotonic()
        if not force and now - self._listing.at < _SCAN_EVERY:
            return self._listing.segments
        segments: list[Segment] = []
        total = 0
        try:
            entries = list(os.scandir(self.directory))
        except OSError as exc:
            logger.warning("sqreen_otel spool %s cannot be listed: %s", self.directory, exc)
            return []
        owners = {e.name[len(_OWNER) : -len(".lock")] for e in entries if e.name.startswith(_OWNER)}
        for entry in entries:
            name = entry.name
            if not name.startswith((_SEGMENT, _TMP)):
                continue
            try:
                size = entry.stat().st_size
            except OSError:
                continue
            if name.startswith(_SEGMENT):
                parts = name.split("-")
                if len(parts) != 4:
                    continue
                segments.append(Segment(name, parts[2], size))
            total += size
        segments.sort(key=lambda s: s.name)
        self._listing = _Listing(now, segments, total)
        self._forget_missing({s.name for s in segments})
        self._clean_dead_owners(owners, {s.owner for s in segments}, entries)
        return segments

    def _forget_missing(self, present: set[str]) -> None:
        """Our segments that vanished without us: another process evicted them (directory bound)."""
        for name in [n for n in self.own if n not in present]:
            count, maybe = self.own.pop(name)
            self._lost.own += count
            self._lost.own_maybe_delivered += count if maybe else 0

    def _clean_dead_owners(self, owners: set[str], with_segments: set[str], entries: list[os.DirEntry[str]]) -> None:
        for owner in owners - with_segments - {self.owner}:
            if self.owner_alive(owner):
                continue
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, f"{_OWNER}{owner}.lock"))
            for entry in entries:  # a writer that died mid-write
                if entry.name.startswith(f"{_TMP}{owner}-"):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    def owner_alive(self, owner: str) -> bool:
        if owner == self.owner:
            return True
        try:
            fd = os.open(os.path.join(self.directory, f"{_OWNER}{owner}.lock"), os.O_RDWR)
        except OSError:
            return False  # no lock file: its process is gone
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops the lock we may have just taken
        return False

    def sendable(self) -> list[Segment]:
        """Our segments and those of owners that are gone, oldest first."""
        alive: dict[str, bool] = {}
        result = []
        for segment in self.scan():
            if segment.owner not in alive:
                alive[segment.owner] = segment.owner != self.owner and self.owner_alive(segment.owner)
            if not alive[segment.owner]:
                result.append(segment)
        return result

    # -- writing ---------------------------------------------------------------------------------

    def write(self, body: bytes, count: int, maybe_delivered: bool) -> tuple[bool, Evicted]:
        """Store one encoded request; evicts the oldest segments past the bound. ``False``: not stored."""
        size = _HEADER.size + len(body)
        evicted = Evicted()
        if size > self.max_bytes:
            return False, evicted
        listing = self._listing
        if time.monotonic() - listing.at >= _SCAN_EVERY:
            self.scan(force=True)
            listing = self._listing
        for segment in list(listing.segments):
            if listing.total + size <= self.max_bytes:
                break
            claimed = self.claim(segment, read_body=False)
            if claimed is None:
                continue
            if claimed.own:
                evicted.own += claimed.count
                evicted.own_maybe_delivered += claimed.count if claimed.maybe_delivered else 0
            else:
                evicted.foreign += claimed.count
                self.evicted_foreign += claimed.count
            self.done(claimed)
        if listing.total + size > self.max_bytes:
            return False, evicted
        self._seq += 1
        name = f"{_SEGMENT}{time.time_ns():020d}-{self.owner}-{self._seq:08d}"
        tmp = os.path.join(self.directory, f"{_TMP}{self.owner}-{self._seq:08d}")
        header = _HEADER.pack(MAGIC, FLAG_MAYBE_DELIVERED if maybe_delivered else 0, count, zlib.crc32(body))
        try:
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:  # events hold PII
                f.write(header)
                f.write(body)
            os.replace(tmp, os.path.join(self.directory, name))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            logger.warning("sqreen_otel spool %s: cannot write a segment: %s", self.directory, exc)
            return False, evicted
        self.own[name] = (count, maybe_delivered)
        listing.segments.append(Segment(name, self.owner, size))
        listing.total += size
        return True, evicted

    # -- reading ---------------------------------------------------------------------------------

    def claim(self, segment: Segment, read_body: bool = True) -> Claimed | None:
        """Lock and read ``segment``; ``None`` when another process holds it, it is gone, or corrupt."""
        path = os.path.join(self.directory, segment.name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            self._drop_from_listing(segment)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(path).st_ino:  # deleted (and maybe replaced) meanwhile
                raise FileNotFoundError(path)
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read() if read_body else f.read(_HEADER.size)
        except OSError:
            os.close(fd)
            return None
        own = segment.name in self.own
        problem = None
        if len(data) < _HEADER.size:
            problem = "truncated header"
        else:
            magic, flags, count, crc = _HEADER.unpack_from(data)
            body = data[_HEADER.size :]
            if magic != MAGIC:
                problem = "not a spool segment"
            elif read_body and zlib.crc32(body) != crc:
                problem = "checksum mismatch (truncated or damaged)"
        if problem is not None:
            self.corrupt += 1
            logger.warning("sqreen_otel spool: skipped and removed %s: %s", path, problem)
            claimed = Claimed(segment, b"", self.own.get(segment.name, (0, False))[0], False, own, fd)
            self.done(claimed)
            self._lost.corrupt_own += claimed.count if own else 0
            return None
        return Claimed(segment, body, count, bool(flags & FLAG_MAYBE_DELIVERED), own, fd)

    def done(self, claimed: Claimed) -> None:
        """Delete a claimed segment (sent, evicted or corrupt) and unlock it."""
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.directory, claimed.segment.name))
        os.close(claimed.fd)
        self.own.pop(claimed.segment.name, None)
        self._drop_from_listing(claimed.segment)
        owner = claimed.segment.owner
        last = owner != self.owner and all(s.owner != owner for s in self._listing.segments)
        if last and not self.owner_alive(owner):  # its last segment: its lock file goes too
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, f"{_OWNER}{owner}.lock"))

    def release(self, claimed: Claimed) -> None:
        """Unlock a claimed segment, keeping it for a later attempt."""
        os.close(claimed.fd)

    def _drop_from_listing(self, segment: Segment) -> None:
        listing = self._listing
        if segment in listing.segments:
            listing.segments.remove(segment)
            listing.total -= segment.size
