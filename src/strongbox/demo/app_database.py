"""A demo application database shaped like seed 000: projects → sessions → messages.

The database is built deterministically from a seed, so tests and benchmarks can compare
content hashes, and every timestamp lies in the 180 days before a fixed reference time
(not "now", which would make two runs differ).
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

REFERENCE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
HISTORY = timedelta(days=180)

SCHEMA = (
    """CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        name TEXT UNIQUE NOT NULL,
        description TEXT,
        created_at TEXT,
        updated_at TEXT
    )""",
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        title TEXT,
        created_at TEXT,
        updated_at TEXT,
        message_count INTEGER
    )""",
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        type TEXT CHECK (type IN ('user', 'assistant', 'system')),
        content TEXT,
        tokens INTEGER,
        cost REAL,
        attachment BLOB NULL,
        created_at TEXT
    )""",
    """CREATE TABLE prompts (
        id TEXT PRIMARY KEY,
        name TEXT,
        category TEXT,
        tags TEXT,
        usage_count INTEGER,
        created_at TEXT
    )""",
    """CREATE TABLE ai_settings (
        id INTEGER PRIMARY KEY,
        key TEXT UNIQUE,
        value TEXT,
        updated_at TEXT
    )""",
)

# Built after the bulk insert: maintaining indexes row by row would slow the load down.
INDEXES = (
    "CREATE INDEX idx_sessions_project_id ON sessions(project_id)",
    "CREATE INDEX idx_messages_session_id ON messages(session_id)",
    "CREATE INDEX idx_messages_created_at ON messages(created_at)",
)

WORDS = (
    "backup", "restore", "snapshot", "chunk", "pack", "index", "verify", "prune", "retention",
    "tenant", "query", "model", "token", "prompt", "answer", "context", "window", "stream",
    "latency", "vector", "schema", "table", "column", "row", "migrate", "deploy", "cluster",
    "replica", "cache", "session", "project", "message", "error", "retry",
)  # fmt: skip
ADJECTIVES = (
    "amber", "brisk", "calm", "daring", "eager", "fuzzy", "gentle", "hollow", "lucid", "mellow",
)  # fmt: skip
NOUNS = (
    "falcon", "harbor", "lantern", "meadow", "orchard", "pebble", "quarry", "river", "summit",
)  # fmt: skip
PROMPT_CATEGORIES = ("coding", "writing", "analysis", "support", "research")
AI_SETTINGS = (
    ("model", "gpt-4o"),
    ("temperature", "0.7"),
    ("max_tokens", "4096"),
    ("top_p", "1.0"),
    ("system_prompt", "You are a helpful assistant."),
    ("stream", "true"),
    ("retry_attempts", "3"),
    ("cost_alert_usd", "25.0"),
)
COST_PER_TOKEN = 0.000_002
ATTACHMENT_RATE = 0.05

Row = tuple[Any, ...]


@dataclass(frozen=True)
class _Project:
    id: str
    created: datetime


@dataclass(frozen=True)
class _Session:
    id: str
    project_id: str
    created: datetime
    message_count: int


def generate(
    path: Path,
    *,
    projects: int = 5,
    sessions_per_project: int = 10,
    messages_per_session: int = 20,
    prompts: int = 20,
    seed: int = 0,
) -> dict[str, int]:
    """Create the demo database at ``path`` and return the number of rows in each table.

    Sessions hold ``messages_per_session`` messages on average but not all the same number
    (so "sessions with N to M messages" selects something); the total is still exactly
    ``projects * sessions_per_project * messages_per_session``.
    """
    if path.exists():
        raise FileExistsError(f"refusing to overwrite {path}")
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # One transaction for everything: a crash leaves an empty file, never half a demo.
        conn.execute("BEGIN")
        for statement in SCHEMA:
            conn.execute(statement)
        counts = _fill(conn, rng, projects, sessions_per_project, messages_per_session, prompts)
        for statement in INDEXES:
            conn.execute(statement)
        _fix_updated_at(conn)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return counts


def _fill(
    conn: sqlite3.Connection,
    rng: random.Random,
    projects: int,
    sessions_per_project: int,
    messages_per_session: int,
    prompts: int,
) -> dict[str, int]:
    project_rows = [_project_row(rng, number) for number in range(projects)]
    owners = [_Project(row[0], row[3]) for row in project_rows]
    sizes = _session_sizes(rng, projects * sessions_per_project, messages_per_session)
    sessions = [
        _new_session(rng, owners[index // sessions_per_project], size)
        for index, size in enumerate(sizes)
    ]
    conn.executemany(
        "INSERT INTO projects VALUES (?, ?, ?, ?, ?)",
        [(*row[:3], _stamp(row[3]), _stamp(row[3])) for row in project_rows],
    )
    conn.executemany(
        "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
        [_session_row(rng, session) for session in sessions],
    )
    conn.executemany(
        "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _message_rows(rng, sessions)
    )
    conn.executemany(
        "INSERT INTO prompts VALUES (?, ?, ?, ?, ?, ?)",
        [_prompt_row(rng, number) for number in range(prompts)],
    )
    conn.executemany(
        "INSERT INTO ai_settings (key, value, updated_at) VALUES (?, ?, ?)",
        [
            (key, value, _stamp(_moment(rng, REFERENCE_TIME - HISTORY)))
            for key, value in AI_SETTINGS
        ],
    )
    return {
        "projects": projects,
        "sessions": len(sessions),
        "messages": sum(sizes),
        "prompts": prompts,
        "ai_settings": len(AI_SETTINGS),
    }


def _fix_updated_at(conn: sqlite3.Connection) -> None:
    """Make updated_at tell the truth: a session's last message, a project's last session.

    Done in SQL after the load, with the indexes in place, because messages are streamed
    and their times are not known yet when sessions and projects are inserted.
    """
    conn.execute(
        "UPDATE sessions SET updated_at = COALESCE("
        "(SELECT MAX(created_at) FROM messages WHERE session_id = sessions.id), created_at)"
    )
    conn.execute(
        "UPDATE projects SET updated_at = COALESCE("
        "(SELECT MAX(updated_at) FROM sessions WHERE project_id = projects.id), created_at)"
    )


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _stamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, as a JavaScript client writes it."""
    # Every moment here derives from REFERENCE_TIME, so it is already UTC and only the
    # "+00:00" suffix needs replacing (cheaper than astimezone a million times).
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def _moment(rng: random.Random, after: datetime, before: datetime = REFERENCE_TIME) -> datetime:
    """A random time in [after, before], to the millisecond."""
    span_ms = max(0, int((before - after).total_seconds() * 1000))
    return after + timedelta(milliseconds=rng.randint(0, span_ms))


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))


def _project_row(rng: random.Random, number: int) -> tuple[str, str, str, datetime]:
    # Projects start in the first two thirds of the history so their sessions have room.
    created = _moment(rng, REFERENCE_TIME - HISTORY, REFERENCE_TIME - HISTORY / 3)
    # The number keeps names unique however many projects are asked for.
    name = f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS).title()} {number + 1}"
    return (_uuid(rng), name, _words(rng, 4, 16), created)


def _session_sizes(rng: random.Random, sessions: int, average: int) -> list[int]:
    """Message counts that vary per session but add up to ``sessions * average``.

    Neighbouring sessions trade messages in pairs, which keeps the total exact and every
    count at least ``average - average // 2`` (so no session is empty unless average is 0).
    """
    sizes = [average] * sessions
    for first in range(0, sessions - 1, 2):
        shift = rng.randint(-(average // 2), average // 2)
        sizes[first] += shift
        sizes[first + 1] -= shift
    return sizes


def _new_session(rng: random.Random, project: _Project, size: int) -> _Session:
    # Leave the last day free so a session's messages still fall before the reference time.
    created = _moment(rng, project.created, REFERENCE_TIME - timedelta(days=1))
    return _Session(_uuid(rng), project.id, created, size)


def _session_row(rng: random.Random, session: _Session) -> Row:
    created = _stamp(session.created)
    title = _words(rng, 2, 6).capitalize()
    # updated_at is corrected to the last message's time by _fix_updated_at.
    return (session.id, session.project_id, title, created, created, session.message_count)


def _session_length(messages: int) -> timedelta:
    """How long a conversation runs: about a minute per message, at most 20 hours."""
    return timedelta(minutes=min(messages, 1200))


class _Corpus:
    """A long run of random words that message texts are cut from.

    Slicing one prepared string is several times faster than drawing every word anew,
    which matters when a demo holds a million messages.
    """

    def __init__(self, rng: random.Random, words: int = 4096) -> None:
        chosen = rng.choices(WORDS, k=words)
        self.text = " ".join(chosen)
        # starts[i] is where word i begins; starts[-1] is one past the end of the text.
        self.starts = list(accumulate((len(word) + 1 for word in chosen), initial=0))

    def cut(self, rng: random.Random, low: int, high: int) -> tuple[str, int]:
        """Between low and high consecutive words, and how many there are."""
        count = rng.randint(low, high)
        first = rng.randrange(len(self.starts) - count)
        return self.text[self.starts[first] : self.starts[first + count] - 1], count


def _message_rows(rng: random.Random, sessions: list[_Session]) -> Iterator[Row]:
    """Yield message rows lazily so a million of them never sit in memory at once."""
    corpus = _Corpus(rng)
    message_id = 0
    for session in sessions:
        length_ms = int(_session_length(session.message_count).total_seconds() * 1000)
        step_ms = max(1, length_ms // max(1, session.message_count))
        moment = session.created
        for position in range(session.message_count):
            message_id += 1
            moment += timedelta(milliseconds=rng.randint(1, step_ms))
            yield _message_row(rng, corpus, message_id, session.id, position, moment)


def _message_row(
    rng: random.Random,
    corpus: _Corpus,
    message_id: int,
    session_id: str,
    position: int,
    moment: datetime,
) -> Row:
    if position == 0:
        kind = "system" if rng.random() < 0.3 else "user"
    else:
        kind = "assistant" if position % 2 else "user"
    content, words = corpus.cut(rng, 3, 60 if kind == "assistant" else 20)
    tokens = words * 4 // 3 + 1  # roughly how a BPE tokenizer counts English words
    cost = round(tokens * COST_PER_TOKEN, 8) if kind == "assistant" else 0.0
    attachment = rng.randbytes(rng.randint(4, 64)) if rng.random() < ATTACHMENT_RATE else None
    return (message_id, session_id, kind, content, tokens, cost, attachment, _stamp(moment))


def _prompt_row(rng: random.Random, number: int) -> Row:
    tags = sorted(set(rng.choices(WORDS, k=rng.randint(0, 4))))
    return (
        _uuid(rng),
        f"{rng.choice(ADJECTIVES).title()} prompt {number + 1}",
        rng.choice(PROMPT_CATEGORIES),
        json.dumps(tags),
        rng.randint(0, 500),
        _stamp(_moment(rng, REFERENCE_TIME - HISTORY)),
    )
