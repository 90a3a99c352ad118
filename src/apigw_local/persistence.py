"""DynamoDB state that survives restarts: a write-ahead journal and snapshots in one directory.

The embedded moto server (`moto_server.py`) calls `Journal.record` for every DynamoDB request
that changed state (moto answered 2xx), *before* the answer leaves the server. The line is
written with one `write(2)` on an O_APPEND file, so once a client has its answer the write is
in the kernel: killing the emulator or the server (even `kill -9`) loses no acknowledged write.
The journal is fsync'd at most `sync_interval` seconds later, which bounds what a power loss
or a kernel crash can take.

At start, `restore` replays `snapshot.json` (every table's definition requests and items, as
of journal entry `seq`) and then the journal's entries after `seq`, into a fresh server; then
`compact` writes a new snapshot atomically (temporary file, fsync, rename) and empties the
journal. Compaction also runs when the journal outgrows `compact_bytes` and at shutdown.
Sequence numbers make a crash between the rename and the truncation harmless: entries already
in the snapshot are skipped on the next restore.

One directory serves one server at a time: a `flock` on `lock` is held for the server's life
(the kernel drops it when the process dies, however it dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Journal", "PersistError", "RestoreReport"]

log = logging.getLogger(__name__)

FORMAT = 1
# Requests that define a table (kept with it, replayed before its items); DeleteTable forgets it.
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Operations_Amazon_DynamoDB.html
TABLE_ACTIONS = frozenset({"CreateTable", "UpdateTable", "UpdateTimeToLive",
                           "UpdateContinuousBackups"})
READ_PREFIXES = ("Get", "BatchGet", "Query", "Scan", "Describe", "List", "TransactGet")
BATCH = 25  # BatchWriteItem's limit

# (region, action, JSON body) → HTTP status
Call = Callable[[str, str, dict[str, Any]], int]
# (region, table name) → the table's items in DynamoDB JSON, {"attr": {"S": "…"}}
ItemsOf = Callable[[str, str], list[dict[str, Any]]]


class PersistError(RuntimeError):
    """The directory cannot be used (held by another server, unreadable snapshot, …)."""


def changes_state(action: str) -> bool:
    """Whether a DynamoDB action may change data or tables (and so goes into the journal)."""
    return not action.startswith(READ_PREFIXES)


@dataclass(frozen=True)
class RestoreReport:
    snapshot: bool  # a snapshot was there
    replayed: int  # journal entries replayed after it
    torn: bool  # the journal's last line was cut short (the server died while writing it)

    @property
    def empty(self) -> bool:
        return not (self.snapshot or self.replayed)

    def summary(self, tables: int, items: int) -> str:
        """One line: what the state holds now (`tables`, `items`) and where it came from."""
        sources = ["the snapshot"] if self.snapshot else []
        if self.replayed:
            sources.append(f"{self.replayed} journal entr{'y' if self.replayed == 1 else 'ies'}")
        text = f"{tables} table(s), {items} item(s) from {' and '.join(sources)}"
        if self.torn:
            text += " (a half-written, unanswered last entry was dropped)"
        return text


class Journal:
    def __init__(self, directory: Path, *, compact_bytes: int = 16 << 20,
                 sync_interval: float = 1.0) -> None:
        self.directory = Path(directory)
        self.compact_bytes = compact_bytes
        self.sync_interval = sync_interval
        self.snapshot_path = self.directory / "snapshot.json"
        self.journal_path = self.directory / "journal.jsonl"
        self.seq = 0
        # region → table → the requests that define it, in order
        self.definitions: dict[str, dict[str, list[list[Any]]]] = {}
        self._fd = -1
        self._lock_fd = -1
        self._size = 0
        self._unsynced = False
        self._closed = threading.Event()

    # -- the directory -------------------------------------------------------------------------

    def acquire(self, timeout: float = 30.0) -> None:
        """Take the directory's lock, waiting up to `timeout` s for a previous server (one
        that is still writing its last snapshot after its emulator was killed)."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # the app's data
            self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise PersistError(f"cannot use {self.directory}: {exc.strerror}") from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(self._lock_fd, 32, 0).decode(errors="replace").strip()
                    raise PersistError(
                        f"{self.directory} is in use by another apigw-local "
                        f"(pid {holder or '?'}); stop it or choose another --persist "
                        "directory") from None
                time.sleep(0.1)
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"{os.getpid()}\n".encode(), 0)

    def restore(self, call: Call) -> RestoreReport:
        """Replay the snapshot and the journal through `call` into an empty server."""
        snapshot_found = self.snapshot_path.exists()
        if snapshot_found:
            snapshot = self._read_snapshot()
            self.seq = snapshot["seq"]
            for region, by_name in snapshot["regions"].items():
                for name, table in by_name.items():
                    for action, body in table["definition"]:
                        self._replay(call, region, action, body)
                    self.definitions.setdefault(region, {})[name] = table["definition"]
                    for chunk in _chunks(table["items"], BATCH):
                        self._replay(call, region, "BatchWriteItem", {"RequestItems": {
                            name: [{"PutRequest": {"Item": item}} for item in chunk]}})
        replayed, torn = 0, False
        for entry in self._journal_entries():
            if entry is None:
                torn = True
                continue
            if entry["seq"] <= self.seq:
                continue  # already in the snapshot (a crash between its rename and truncation)
            body = json.loads(entry["body"])
            self._replay(call, entry["region"], entry["action"], body)
            self._define(entry["region"], entry["action"], body)
            self.seq = entry["seq"]
            replayed += 1
        self._fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size
        return RestoreReport(snapshot_found, replayed, torn)

    def _read_snapshot(self) -> dict[str, Any]:
        try:
            snapshot = json.loads(self.snapshot_path.read_bytes())
            if snapshot.get("format") != FORMAT:
                raise ValueError(f"format {snapshot.get('format')!r}, expected {FORMAT}")
            return snapshot
        except (OSError, ValueError, AttributeError) as exc:
            raise PersistError(
                f"{self.snapshot_path} cannot be read ({exc}); nothing was changed: move the "
                "directory away to start empty (make reset)") from None

    def _journal_entries(self) -> Iterator[dict[str, Any] | None]:
        """The journal's entries; None for a torn last line (written when the server died)."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        lines = data.split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                if number == len(lines):  # no newline after it: the write was cut short
                    yield None
                    return
                raise PersistError(
                    f"{self.journal_path}: line {number} is damaged; nothing was changed: move "
                    "the directory away to start empty (make reset)") from None

    @staticmethod
    def _replay(call: Call, region: str, action: str, body: dict[str, Any]) -> None:
        status = call(region, action, body)
        if not 200 <= status < 300:
            log.warning("restore: %s on %s answered %d", action, body.get("TableName"), status)

    def _define(self, region: str, action: str, body: dict[str, Any]) -> None:
        name = body.get("TableName")
        if not isinstance(name, str):
            return
        tables = self.definitions.setdefault(region, {})
        if action == "CreateTable":
            tables[name] = [[action, body]]
        elif action == "DeleteTable":
            tables.pop(name, None)
        elif action in TABLE_ACTIONS and name in tables:
            tables[name].append([action, body])

    # -- while serving (the caller serialises these) ------------------------------------------

    def record(self, region: str, action: str, body: bytes, items_of: ItemsOf) -> None:
        """Append one state-changing request that succeeded. Call before answering it."""
        self.seq += 1
        text = body.decode("utf-8")
        line = json.dumps({"seq": self.seq, "region": region, "action": action,
                           "body": text}, separators=(",", ":")).encode() + b"\n"
        os.write(self._fd, line)
        self._size += len(line)
        self._unsynced = True
        if action in TABLE_ACTIONS or action == "DeleteTable":
            self._define(region, action, json.loads(text))
        if self._size > self.compact_bytes:
            self.compact(items_of)

    def compact(self, items_of: ItemsOf) -> tuple[int, int]:
        """Write the whole state as a snapshot (atomically) and empty the journal; returns how
        many tables and items it holds."""
        snapshot = {"format": FORMAT, "seq": self.seq, "regions": {
            region: {name: {"definition": definition, "items": items_of(region, name)}
                     for name, definition in tables.items()}
            for region, tables in self.definitions.items() if tables}}
        temporary = self.snapshot_path.with_suffix(".tmp")
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(json.dumps(snapshot, separators=(",", ":")).encode())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.snapshot_path)
        _fsync_directory(self.directory)
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            self._size = 0
            self._unsynced = False
        tables = [table for by_name in snapshot["regions"].values() for table in by_name.values()]
        return len(tables), sum(len(table["items"]) for table in tables)

    def sync_forever(self) -> None:
        """fsync the journal every `sync_interval` s while it has unsynced lines (a thread)."""
        while not self._closed.wait(self.sync_interval):
            if self._unsynced and self._fd >= 0:
                self._unsynced = False
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)

    def close(self) -> None:
        self._closed.set()
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = -1


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
