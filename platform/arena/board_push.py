"""The boards' versions pushed to every web process, so that reading a board costs no database round trip.

Every change of a stored board bumps its `StandingBoard.version` (standings._lock) and, on PostgreSQL, sends
`pg_notify` of "PHASE TRACK VERSION" in the same transaction; a change of a challenge, phase or track (a title,
a date, a reveal, the tracks of a phase) sends "config". PostgreSQL delivers a notification when, and only when,
its transaction commits, in commit order. Each web process keeps one LISTEN connection (a daemon thread; a
greenlet under gevent) that applies them to its map of board versions. A board request that this process has
already answered (same challenge, phase, track and split), whose board has the same version, with no
configuration change since and before the phase's next date (its state may change then), is answered from
memory: no query, no connection taken from the pool.

What a memory answer may miss: a change committed in another process in the milliseconds before its
notification arrives (as a request that started just before that commit would). Nothing else:
- until the LISTEN connection is up and the map read in full (at start and after every reconnection), and
  whenever it has not answered its check for 3 x POLL_SECONDS, every board is read from the database as before;
- a process's own commits are applied to its map at once (read-your-writes);
- `sync(engine)` waits until every notification committed before the call has been applied (the tests use it;
  so can any caller that must see a commit made elsewhere).

Only answers that do not depend on who asks are kept: the public split, and the private one once revealed (an
organizer reading a hidden private board goes to the database). SQLite (the embedded default: one machine, the
file is the database) has no LISTEN: boards are read with their one query, as before. BOARD_PUSH=False
(ARENA_BOARD_PUSH=0) turns this off.

The notifications of a database schema go to a channel named after it (`arena_boards_<md5 of the schema>`), so
two deployments (or test runs) sharing one PostgreSQL database in different schemas never hear each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import threading
import time
import uuid
import weakref

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .models import Challenge, Phase, Track, utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0  # the LISTEN connection is checked this often; silent for 3 polls, memory answers stop
MAX_ENTRIES = 1024  # answers kept per process (one per challenge x phase x track x split asked)
_NOTES = "arena.board_push.notes"  # session.info: what this transaction sends (applied here at its commit)
_CONFIG = "arena.board_push.config"  # session.info: this transaction changed a challenge, phase or track
_NOTIFY = text("SELECT pg_notify('arena_boards_' || md5(current_schema()), :payload)")
_CHANNELS: weakref.WeakKeyDictionary[Engine, Channel] = weakref.WeakKeyDictionary()
_CHANNELS_LOCK = threading.Lock()


@dataclasses.dataclass
class Entry:
    """One answered board: what a request needs to answer it again (the Board carries the memoised bodies)."""

    board_key: tuple[int, int]  # (phase id, track id)
    version: int  # the board's StandingBoard.version it was read at
    generation: int  # the channel's generation when the read began (a config change or a resync moves it)
    until: dt.datetime  # the phase's next date: its state may change then
    board: object  # leaderboard.Board
    phase_state: str
    private_visible: bool
    # page number -> (its HTML as an anonymous visitor sees it, its gzip memo name, its ETag part), once rendered
    pages: dict[str, tuple[str, str, str]] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- writers


def listen(maker) -> None:
    """Install the writers' hooks on a sessionmaker (db.init_app, after standings.listen)."""
    event.listen(maker, "before_flush", _collect)
    event.listen(maker, "before_commit", _config_notice)
    event.listen(maker, "after_commit", _apply_own)
    event.listen(maker, "after_rollback", lambda session: session.info.pop(_NOTES, None))


def notify(session: Session, payload: str) -> None:
    """Send payload to every web process when this transaction commits (PostgreSQL; nothing elsewhere)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(_NOTIFY, {"payload": payload})
    session.info.setdefault(_NOTES, []).append(payload)


def board_changed(session: Session, phase_id: int, track_id: int, version: int) -> None:
    """standings._lock calls this after bumping a board's version, in the same transaction."""
    notify(session, f"{phase_id} {track_id} {version}")


def _collect(session: Session, _context, _instances) -> None:
    if session.info.get(_CONFIG):
        return
    config = Challenge | Phase | Track
    if any(isinstance(obj, config) for obj in (*session.new, *session.deleted)) or any(
        isinstance(obj, config) and session.is_modified(obj, include_collections=False) for obj in session.dirty
    ):  # a row of theirs changes (not only a collection of theirs: a new team joins challenge.teams)
        session.info[_CONFIG] = True


def _config_notice(session: Session) -> None:
    session.flush()  # what is still pending reaches _collect
    if session.info.pop(_CONFIG, None):
        payload = f"config {uuid.uuid4().hex}"  # named: the committing process applies it once, not twice
        channel = _CHANNELS.get(session.get_bind())
        if channel is not None:
            channel.own.add(payload)
        notify(session, payload)


def _apply_own(session: Session) -> None:
    notes = session.info.pop(_NOTES, None)
    session.info.pop(_CONFIG, None)
    if notes:
        channel = _CHANNELS.get(session.get_bind())
        if channel is not None:
            for payload in notes:
                channel.apply(payload)


# --------------------------------------------------------------------------------------------------- readers


class Channel:
    """One process's LISTEN connection to one database, its map of board versions and its kept answers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pid = os.getpid()
        self.versions: dict[tuple[int, int], int] = {}
        self.entries: dict[tuple, Entry] = {}
        self.generation = 0
        self.live = False
        self.beat = 0.0  # time.monotonic() of the connection's last sign of life
        self.lock = threading.Lock()
        self.waiters: dict[str, threading.Event] = {}
        self.own: set[str] = set()  # configuration changes sent by this process, not yet applied
        self.applied: set[str] = set()  # ... applied once, to be ignored the second time
        self.stopped = threading.Event()
        self.connection = None
        self.thread = threading.Thread(target=self._run, name="arena-board-push", daemon=True)
        self.thread.start()

    def usable(self) -> bool:
        return self.live and time.monotonic() - self.beat < 3 * POLL_SECONDS

    def apply(self, payload: str) -> None:
        """Apply a notification: from the LISTEN connection, or at the commit of this process's own transaction
        (which the connection then delivers again)."""
        if payload.startswith("sync "):
            waiter = self.waiters.pop(payload[5:], None)
            if waiter is not None:
                waiter.set()
            return
        with self.lock:
            if payload.startswith("config"):
                # this process's own change arrives twice (its commit hook, the connection), in either order
                if payload in self.applied:
                    self.applied.discard(payload)
                    return
                if payload in self.own:
                    self.own.discard(payload)
                    self.applied.add(payload)
                self.generation += 1
                self.entries.clear()
                return
            try:
                phase_id, track_id, version = (int(part) for part in payload.split())
            except ValueError:
                log.warning("board push: ignored a notification %r", payload[:80])
                return
            key = (phase_id, track_id)
            self.versions[key] = max(version, self.versions.get(key, version))  # versions only grow

    def _run(self) -> None:
        backoff = 0.5
        while not self.stopped.is_set():
            try:
                self._listen()
                backoff = 0.5
            except Exception as exc:
                if not self.stopped.is_set():
                    log.warning(
                        "board push: the LISTEN connection failed (%s: %s); boards are read from the database",
                        exc.__class__.__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "",
                    )
            finally:
                self.live = False
                self._close()
            self.stopped.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _listen(self) -> None:
        raw = self.engine.raw_connection()  # the engine's own connect arguments (search_path included)
        self.connection = conn = raw.dbapi_connection
        raw.detach()  # the pool forgets it: this connection lives as long as the thread
        conn.rollback()
        conn.autocommit = True
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        conn.execute(f'LISTEN "arena_boards_{hashlib.md5(schema.encode()).hexdigest()}"')
        versions = {(p, t): v for p, t, v in conn.execute("SELECT phase_id, track_id, version FROM standing_board")}
        with self.lock:  # the map read after LISTEN: nothing committed since is missed
            self.versions = versions
            self.own.clear()
            self.applied.clear()
            self.generation += 1
            self.entries.clear()
        self.beat, self.live = time.monotonic(), True
        while not self.stopped.is_set():
            for note in conn.notifies(timeout=POLL_SECONDS):
                self.apply(note.payload)
                self.beat = time.monotonic()
            conn.execute("SELECT 1")  # a dead server or connection raises here
            self.beat = time.monotonic()

    def _close(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                pass

    def stop(self) -> None:
        self.stopped.set()
        self.live = False
        self._close()


def _channel(engine: Engine, start: bool = True) -> Channel | None:
    if engine.dialect.name != "postgresql":
        return None
    channel = _CHANNELS.get(engine)
    if channel is not None and channel.pid == os.getpid():
        return channel
    if not start:
        return None
    with _CHANNELS_LOCK:
        channel = _CHANNELS.get(engine)
        if channel is None or channel.pid != os.getpid():  # none yet, or inherited through a fork (no thread)
            channel = _CHANNELS[engine] = Channel(engine)
            if not event.contains(engine, "engine_disposed", stop):
                event.listen(engine, "engine_disposed", stop)
    return channel


def stop(engine: Engine) -> None:
    """Close this process's LISTEN connection to engine's database (at engine.dispose()); a later board read
    starts another, which reads the map again before anything is answered from memory."""
    with _CHANNELS_LOCK:
        channel = _CHANNELS.pop(engine, None)
    if channel is not None:
        channel.stop()


def state(engine: Engine) -> str:
    """What /readyz says of this process's board reads."""
    if engine.dialect.name != "postgresql":
        return "unused: every board is read with its one query (no LISTEN on this database)"
    channel = _channel(engine)
    if channel is not None and channel.usable():
        return f"live: {len(channel.versions)} boards' versions heard, {len(channel.entries)} answers kept"
    return "connecting: every board is read from the database meanwhile"


def generation(engine: Engine) -> int | None:
    """Taken before a board is read from the database, handed to `keep`: None when no answer may be kept."""
    channel = _channel(engine)
    return channel.generation if channel is not None and channel.usable() else None


def next_date(phase: Phase, now: dt.datetime) -> dt.datetime:
    """The first of the phase's dates after now (its state is a function of them), else the end of time."""
    later = [t for t in (phase.starts_at, phase.ends_at, phase.reveal_at) if t is not None and t > now]
    return min(later, default=dt.datetime.max)


def keep(engine: Engine, generation_before: int | None, key: tuple, phase: Phase, version: int, board) -> None:
    """Keep the answer just read from the database for the next request of the same key."""
    channel = _channel(engine, start=False)
    if channel is None or generation_before is None:
        return
    now = utcnow()
    entry = Entry(
        (phase.id, board.track_id),
        version,
        generation_before,
        next_date(phase, now),
        board,
        phase.state(now),
        phase.private_visible(now),
    )
    with channel.lock:
        kept = channel.entries.get(key)
        if kept is not None and kept.board is board and kept.generation == generation_before:
            return  # the same answer, with the pages already rendered for it
        if len(channel.entries) >= MAX_ENTRIES and key not in channel.entries:
            channel.entries.clear()
        channel.entries[key] = entry


def hot(engine: Engine, key: tuple) -> Entry | None:
    """The kept answer of key when it is still the board's, else None (read it from the database)."""
    channel = _channel(engine)
    if channel is None or not channel.usable():
        return None
    entry = channel.entries.get(key)
    if (
        entry is None
        or entry.generation != channel.generation
        or channel.versions.get(entry.board_key) != entry.version
        or utcnow() >= entry.until
    ):
        return None
    return entry


def attach_page(engine: Engine, key: tuple, board, page: str, kept: tuple[str, str, str]) -> None:
    """Keep a page rendered for an anonymous visitor beside the kept answer of the same board."""
    channel = _channel(engine, start=False)
    entry = channel.entries.get(key) if channel is not None else None
    if entry is not None and entry.board is board:
        entry.pages[page] = kept


def sync(engine: Engine, timeout: float = 10.0) -> bool:
    """Wait until this process's map holds every notification committed before the call (True), or timeout."""
    channel = _channel(engine)
    if channel is None:
        return True  # no memory answers: every read is the database's
    deadline = time.monotonic() + timeout
    while not channel.usable():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    token = uuid.uuid4().hex
    waiter = channel.waiters[token] = threading.Event()
    with engine.connect() as conn:
        conn.execute(_NOTIFY, {"payload": f"sync {token}"})
        conn.commit()
    return waiter.wait(max(0.0, deadline - time.monotonic()))
