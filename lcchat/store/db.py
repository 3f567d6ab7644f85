"""The conversation database: one SQLite file in the data dir, conversations.db.

WAL mode with a busy timeout, and every write in one short BEGIN IMMEDIATE transaction,
so two lcchat processes can write at once and neither loses a turn (the second waits for
the first's few milliseconds). synchronous=FULL: a turn that was committed survives a
power cut. The file is created 0600 in a 0700 directory; SQLite gives its -wal and -shm
files the same mode.

The schema grows by MIGRATIONS, applied in order on open; PRAGMA user_version counts
those applied. A database that cannot be opened for writing (a read-only or full disk:
WAL needs its -shm file) is opened read-only, so history can still be read; a damaged
one is reported (Damaged), never shown as if it were whole.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from lcchat.errors import InputError, LcchatError

log = logging.getLogger("lcchat.store")

DB_NAME = "conversations.db"
BUSY_TIMEOUT_MS = 30_000

# The schema's steps, oldest first: (name, statements). Never edit or reorder one that has
# shipped; add a step. user_version = how many have been applied.
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("1 conversations and messages", (
    """CREATE TABLE IF NOT EXISTS conversations (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        created  REAL NOT NULL,            -- unix time
        updated  REAL NOT NULL,            -- unix time of the last write, also a version stamp
        profile  TEXT NOT NULL DEFAULT '',
        model    TEXT NOT NULL DEFAULT '', -- the model file's path
        name     TEXT,                     -- given by /save NAME
        system   TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS conversations_name ON conversations(name) WHERE name IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS conversations_profile ON conversations(profile, updated)",
    """CREATE TABLE IF NOT EXISTS messages (
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,      -- 0, 1, 2 ... in conversation order
        role        TEXT NOT NULL,         -- user or assistant
        content     TEXT NOT NULL,
        interrupted INTEGER NOT NULL DEFAULT 0,
        stats       TEXT,                  -- JSON: the reply's figures (Stats.as_json())
        created     REAL NOT NULL,
        PRIMARY KEY (conversation_id, seq)
    )""",
    )),
    # What was in force when each message was written, so an export shows a conversation
    # as it happened (a /system or /quant mid-way). NULL in rows written before: the
    # conversation's own columns stand in.
    ("2 per-turn system prompt, model file and quant", (
        "ALTER TABLE messages ADD COLUMN system TEXT",
        "ALTER TABLE messages ADD COLUMN model TEXT",
        "ALTER TABLE messages ADD COLUMN quant TEXT",
    )),
    # A reasoning model's thinking, kept apart from the answer (content) it came before.
    ("3 a reply's thinking, apart from its answer", (
        "ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT ''",
    )),
    # The server a remote turn came from (--remote, [backend] url); `model` then holds the
    # model name the server was asked for. NULL for turns of a model run in-process.
    ("4 per-turn remote server URL", (
        "ALTER TABLE messages ADD COLUMN server TEXT",
    )),
)
SCHEMA_VERSION = len(MIGRATIONS)


class UnknownConversation(InputError):
    """An ID or name that names no stored conversation."""


class Damaged(LcchatError):
    """The database file is corrupt: what it says cannot be trusted to be all there is."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path} is damaged ({detail}); some conversations may be missing. "
                         f"To recover what is left: {recover_hint(path)}")
        self.path = path
        self.detail = detail


def is_conversation_number(word: str) -> bool:
    """Whether `word` is a conversation number ("12" or "#12"): ASCII digits only, since
    str.isdigit() also accepts "²" or "٣", which are names, not numbers."""
    digits = word.lstrip("#")
    return digits.isascii() and digits.isdigit()


def recover_hint(path: Path) -> str:
    fixed = path.with_name("recovered.db")
    return (f"sqlite3 {path} .recover | sqlite3 {fixed}, then move {fixed.name} over {path.name} "
            "(keep a copy of the damaged file)")


@dataclass
class TurnSettings:
    """What was in force for a message: the system prompt, model file and its quant type;
    for a remote model, the server's URL (and `model` is the name the server was asked for)."""

    system: str = ""
    model: str = ""
    quant: str = ""
    server: str = ""


@dataclass
class StoredMessage:
    seq: int
    role: str
    content: str
    interrupted: bool = False
    stats: dict | None = None
    created: float = 0.0
    settings: TurnSettings | None = None  # None: written before they were recorded
    reasoning: str = ""  # a reasoning model's thinking before the answer (content)


@dataclass
class StoredConversation:
    id: int
    created: float
    updated: float
    profile: str
    model: str
    name: str | None
    system: str
    messages: list[StoredMessage] = field(default_factory=list)

    @property
    def title(self) -> str:
        """The name, else the start of the first user message."""
        if self.name:
            return self.name
        first = next((m.content for m in self.messages if m.role == "user"), "")
        return one_line(first)


@dataclass
class Summary:
    """One line of `lcchat history list`."""

    id: int
    created: float
    updated: float
    profile: str
    model: str
    name: str | None
    first_user: str
    n_messages: int
    interrupted: bool  # the last reply was cut short
    state_bytes: int = 0  # its saved KV state on disk (filled in by the caller)


def one_line(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def default_path() -> Path:
    from lcchat.paths import data_dir

    return data_dir() / DB_NAME


class Store:
    """The conversation database. Opened on first use; safe to share between threads (one
    connection, one lock). Raises sqlite3.Error or OSError when the file cannot be written:
    the Recorder turns those into one warning. Reading falls back to a read-only open
    (self.read_only) when the file cannot be opened for writing."""

    def __init__(self, path: Path | None = None, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.busy_timeout_ms = busy_timeout_ms
        self.read_only = False
        self._conn: sqlite3.Connection | None = None
        self._columns: set[str] = set()  # the messages table's, for a read-only old schema
        self._lock = threading.RLock()

    # ------------------------------------------------------------ connection

    def exists(self) -> bool:
        return self.path.is_file()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        from lcchat.paths import ensure_private_dir

        ensure_private_dir(self.path.parent)
        if not self.path.exists():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
                migrate(conn)
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
                # Two processes opening a new file at once: while one turns on WAL, SQLite
                # can answer the other "locked" at once, without its busy handler. Opening
                # again a moment later finds the file in WAL mode.
                if _is_locked(exc) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise
            self._use(conn)
            return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        """For a file that cannot be opened for writing (a read-only directory or disk, a
        full disk): mode=ro reads it, WAL included, when its -shm file exists or can be
        made; immutable=1 reads the main file as it is when not even that works."""
        from urllib.parse import quote

        uri = "file:" + quote(str(self.path.resolve()))
        error: sqlite3.Error | None = None
        for query in ("?mode=ro", "?immutable=1"):
            try:
                conn = sqlite3.connect(uri + query, uri=True, isolation_level=None, check_same_thread=False)
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                if _is_damage(exc):
                    raise
                error = exc
                continue
            self._use(conn)
            self.read_only = True
            return conn
        assert error is not None
        raise error

    def _use(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so a second writer waits
        on the busy timeout instead of failing half-way."""
        with self._lock:
            if self.read_only:
                raise sqlite3.OperationalError("the database was opened read-only")
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection | None]:
        """A connection for reading; None when there is no database yet. A file that
        cannot be opened for writing is opened read-only; a damaged one raises Damaged."""
        with self._lock:
            if self._conn is None and not self.exists():
                yield None
                return
            if self._conn is None:
                try:
                    self._connect()
                except sqlite3.DatabaseError as exc:
                    if _is_damage(exc):
                        raise Damaged(self.path, str(exc)) from exc
                    log.debug("opening %s for writing failed (%s); reading it read-only", self.path, exc)
                    try:
                        self._connect_read_only()
                    except sqlite3.DatabaseError as exc2:
                        if _is_damage(exc2):
                            raise Damaged(self.path, str(exc2)) from exc2
                        raise
                except OSError as exc:
                    log.debug("preparing %s failed (%s); reading it read-only", self.path, exc)
                    self._connect_read_only()
            try:
                yield self._conn
            except sqlite3.DatabaseError as exc:
                if _is_damage(exc):
                    raise Damaged(self.path, str(exc)) from exc
                raise

    def check(self) -> None:
        """Raise Damaged when SQLite finds the file corrupt (PRAGMA quick_check: it reads
        every page, so it runs only when a read has already gone wrong)."""
        with self.reading() as conn:
            if conn is None:
                return
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
        if rows != ["ok"]:
            raise Damaged(self.path, "; ".join(str(r) for r in rows[:2]))

    # ------------------------------------------------------------ writing

    @staticmethod
    def create(conn: sqlite3.Connection, *, profile: str, model: str, system: str, now: float) -> int:
        cur = conn.execute("INSERT INTO conversations (created, updated, profile, model, system) VALUES (?, ?, ?, ?, ?)",
                           (now, now, profile, model, system))
        return int(cur.lastrowid)

    @staticmethod
    def version(conn: sqlite3.Connection, cid: int) -> float | None:
        """The conversation's `updated` stamp, or None when it is gone."""
        row = conn.execute("SELECT updated FROM conversations WHERE id = ?", (cid,)).fetchone()
        return None if row is None else float(row[0])

    @staticmethod
    def write_messages(conn: sqlite3.Connection, cid: int, start: int,
                       rows: list[tuple], *, system: str, now: float,
                       settings: TurnSettings | None = None) -> None:
        """Replace the messages from `start` on with `rows` (role, content, interrupted, stats,
        and optionally the reply's thinking), each marked with the `settings` in force (None:
        not known; the conversation's stand in)."""
        turn = settings or TurnSettings(None, None, None, None)  # type: ignore[arg-type]
        conn.execute("DELETE FROM messages WHERE conversation_id = ? AND seq >= ?", (cid, start))
        conn.executemany(
            "INSERT INTO messages (conversation_id, seq, role, content, interrupted, stats, created, system, model, quant,"
            " reasoning, server) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(cid, start + i, role, content, int(bool(interrupted)), json.dumps(stats) if stats else None, now,
              turn.system, turn.model, turn.quant, rest[0] if rest else "", turn.server or None)
             for i, (role, content, interrupted, stats, *rest) in enumerate(rows)],
        )
        conn.execute("UPDATE conversations SET updated = ?, system = ? WHERE id = ?", (now, system, cid))

    def set_name(self, cid: int, name: str | None) -> None:
        with self.transaction() as conn:
            if name:
                row = conn.execute("SELECT id FROM conversations WHERE name = ? AND id != ?", (name, cid)).fetchone()
                if row is not None:
                    raise InputError(f"conversation {row[0]} is already named {name!r}")
            conn.execute("UPDATE conversations SET name = ? WHERE id = ?", (name, cid))

    def compact(self) -> None:
        """Give the space of deleted rows back to the disk (VACUUM); best effort."""
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                log.debug("VACUUM failed", exc_info=True)

    def delete(self, cid: int) -> bool:
        with self.transaction() as conn:
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (cid,))
            return conn.execute("DELETE FROM conversations WHERE id = ?", (cid,)).rowcount > 0

    # ------------------------------------------------------------ reading

    def get(self, cid: int) -> StoredConversation | None:
        with self.reading() as conn:
            if conn is None:
                return None
            row = conn.execute("SELECT id, created, updated, profile, model, name, system FROM conversations WHERE id = ?",
                               (cid,)).fetchone()
            if row is None:
                return None
            conv = StoredConversation(int(row[0]), float(row[1]), float(row[2]), row[3], row[4], row[5], row[6])
            per_turn = {"system", "model", "quant"} <= self._columns
            extra = ", system, model, quant" if per_turn else ", NULL, NULL, NULL"
            extra += ", reasoning" if "reasoning" in self._columns else ", ''"
            extra += ", server" if "server" in self._columns else ", NULL"
            for seq, role, content, interrupted, stats, created, system, model, quant, reasoning, server in conn.execute(
                f"SELECT seq, role, content, interrupted, stats, created{extra} FROM messages WHERE conversation_id = ? "
                "ORDER BY seq", (cid,),
            ):
                settings = None if system is None else TurnSettings(system, model or "", quant or "", server or "")
                conv.messages.append(StoredMessage(int(seq), role, content, bool(interrupted),
                                                   _json_or_none(stats), float(created), settings, reasoning or ""))
            return conv

    def resolve(self, ref: str | int) -> int:
        """The id of the conversation named by `ref`: its id, or the name /save gave it.
        Raises UnknownConversation (exit status 2)."""
        text = str(ref).strip().lstrip("#")
        with self.reading() as conn:
            if conn is not None:
                if is_conversation_number(text):
                    number = int(text)  # past SQLite's 64-bit range no conversation has it
                    row = None if number >= 1 << 63 else conn.execute(
                        "SELECT id FROM conversations WHERE id = ?", (number,)).fetchone()
                else:
                    row = conn.execute("SELECT id FROM conversations WHERE name = ?", (text,)).fetchone()
                if row is not None:
                    return int(row[0])
        raise UnknownConversation(f"no conversation {str(ref).strip()!r}; `lcchat history list` shows them")

    def ids(self, *, updated_before: float | None = None) -> list[int]:
        """Every conversation's id (last written before `updated_before`, when given)."""
        query = "SELECT id FROM conversations" + (" WHERE updated < ?" if updated_before is not None else "")
        with self.reading() as conn:
            if conn is None:
                return []
            return [int(r[0]) for r in conn.execute(query, () if updated_before is None else (updated_before,))]

    def last(self, profile: str | None = None) -> int | None:
        """The most recently written conversation with messages (of `profile`, when given)."""
        query = ("SELECT c.id FROM conversations c WHERE EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)"
                 + (" AND c.profile = ?" if profile is not None else "") + " ORDER BY c.updated DESC, c.id DESC LIMIT 1")
        with self.reading() as conn:
            if conn is None:
                return None
            row = conn.execute(query, (profile,) if profile is not None else ()).fetchone()
            return None if row is None else int(row[0])

    def count_with_messages(self) -> int:
        """How many conversations have messages, counted on the messages' primary-key index:
        a cross-check for summaries() (which walks the conversations table) that costs one
        index scan, where quick_check reads every page."""
        with self.reading() as conn:
            if conn is None:
                return 0
            return int(conn.execute("SELECT COUNT(DISTINCT conversation_id) FROM messages").fetchone()[0])

    def summaries(self, limit: int | None = None) -> list[Summary]:
        """Conversations with at least one message, most recent first."""
        query = """
            SELECT c.id, c.created, c.updated, c.profile, c.model, c.name,
                   (SELECT content FROM messages WHERE conversation_id = c.id AND role = 'user' ORDER BY seq LIMIT 1),
                   (SELECT COUNT(*) FROM messages WHERE conversation_id = c.id),
                   (SELECT interrupted FROM messages WHERE conversation_id = c.id ORDER BY seq DESC LIMIT 1)
            FROM conversations c
            WHERE EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)
            ORDER BY c.updated DESC, c.id DESC
        """ + (" LIMIT ?" if limit else "")
        with self.reading() as conn:
            if conn is None:
                return []
            return [Summary(int(r[0]), float(r[1]), float(r[2]), r[3], r[4], r[5], r[6] or "", int(r[7]), bool(r[8]))
                    for r in conn.execute(query, (limit,) if limit else ())]


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the MIGRATIONS this file lacks, each in its own transaction, in order."""
    done = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for number, (name, statements) in enumerate(MIGRATIONS, 1):
        if number <= done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) < number:  # another process may have won
                log.debug("migrating the conversation store: %s", name)
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _is_locked(exc: BaseException) -> bool:
    """SQLite's SQLITE_BUSY/SQLITE_LOCKED, which a moment's wait can cure."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _is_damage(exc: BaseException) -> bool:
    """SQLite's words for a corrupt file (SQLITE_CORRUPT, SQLITE_NOTADB)."""
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def _json_or_none(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def now() -> float:
    return time.time()
