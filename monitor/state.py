"""What the monitor has verified and raised, kept in one SQLite file so that a restart neither
re-verifies nor forgets: checkpoints verified (size -> root), anchors read from the chain, the
last block scanned, and every alarm (sticky until the file is cleared of it)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- covered: 0 not yet known to be anchored in time, 1 anchored in time, 2 reported late
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root TEXT NOT NULL, sealed_at REAL NOT NULL,
                                        covered INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS checkpoints_uncovered ON checkpoints (covered, size);
-- status: pending (no checkpoint of its size verified yet), ok, bad (alarm raised)
CREATE TABLE IF NOT EXISTS anchors (size INTEGER NOT NULL, root TEXT NOT NULL, block_number INTEGER NOT NULL,
                                    block_time INTEGER NOT NULL, tx_hash TEXT NOT NULL, status TEXT NOT NULL,
                                    PRIMARY KEY (size, root, block_number));
CREATE INDEX IF NOT EXISTS anchors_by_status ON anchors (status, size);
CREATE TABLE IF NOT EXISTS alarms (key TEXT PRIMARY KEY, kind TEXT NOT NULL, line TEXT NOT NULL,
                                   raised_at REAL NOT NULL);
"""


class StateMismatch(ValueError):
    """The state file belongs to another ledger (or origin, or chain contract)."""


class MonitorState:
    """The monitor's SQLite state. `:memory:` keeps nothing across runs."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None)  # transactions are explicit
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses at most the last pass
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- whose state this is ------------------------------------------------------------------

    def bind(self, **identity: str) -> None:
        """Record what this state follows (ledger, origin, contract) the first time; refuse a file
        that follows something else: its verified roots would be compared with another ledger's."""
        for key, value in identity.items():
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES (?, ?)", (key, value))
            elif row[0] != value:
                raise StateMismatch(f"the state file {self.path} follows {key} {row[0]!r}, not {value!r}")

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- checkpoints --------------------------------------------------------------------------

    def last_verified(self) -> tuple[int, str] | None:
        """(size, root hex) of the largest verified checkpoint."""
        return self.db.execute("SELECT size, root FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()

    def verified_root(self, size: int) -> str | None:
        row = self.db.execute("SELECT root FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return None if row is None else row[0]

    def verified_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM checkpoints").fetchone()[0]

    def add_verified(self, rows: list[tuple[int, str, float]]) -> None:
        """(size, root hex, sealed_at epoch seconds) of checkpoints verified, in one transaction."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO checkpoints (size, root, sealed_at) VALUES (?, ?, ?)", rows)

    def uncovered(self) -> list[tuple[int, str, float]]:
        return self.db.execute("SELECT size, root, sealed_at FROM checkpoints WHERE covered = 0 ORDER BY size").fetchall()

    def mark_covered(self, sizes: list[int], covered: int) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("UPDATE checkpoints SET covered = ? WHERE size = ?", [(covered, s) for s in sizes])

    # -- anchors ------------------------------------------------------------------------------

    def add_anchors(self, anchors: list[tuple[int, str, int, int, str]], last_block: int) -> None:
        """Anchors (size, root hex, block number, block time, tx hash) read up to `last_block`,
        pending until checked; the block is saved with them, so none is read twice or skipped."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR IGNORE INTO anchors VALUES (?, ?, ?, ?, ?, 'pending')", anchors)
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('last_block', ?)", (str(last_block),))

    def pending_anchors(self) -> list[tuple[int, str, int, int, str]]:
        return self.db.execute("SELECT size, root, block_number, block_time, tx_hash FROM anchors "
                               "WHERE status = 'pending' ORDER BY size").fetchall()

    def set_anchor_status(self, size: int, root: str, block_number: int, status: str) -> None:
        self.db.execute("UPDATE anchors SET status = ? WHERE size = ? AND root = ? AND block_number = ?",
                        (status, size, root, block_number))

    def good_anchors_from(self, size: int) -> list[tuple[int, int]]:
        """(size, block time) of every anchor that matched its checkpoint, of `size` or more."""
        return self.db.execute("SELECT size, block_time FROM anchors WHERE status = 'ok' AND size >= ? "
                               "ORDER BY size", (size,)).fetchall()

    def anchors_checked(self) -> int:
        return self.db.execute("SELECT count(*) FROM anchors WHERE status != 'pending'").fetchone()[0]

    # -- alarms -------------------------------------------------------------------------------

    def add_alarm(self, key: str, kind: str, line: str, raised_at: float) -> bool:
        """Keep an alarm; False when the same one was raised before (it is not raised twice)."""
        return self.db.execute("INSERT OR IGNORE INTO alarms VALUES (?, ?, ?, ?)",
                               (key, kind, line, raised_at)).rowcount == 1

    def alarms(self) -> list[tuple[str, str]]:
        """(kind, line) of every alarm raised, oldest first."""
        return self.db.execute("SELECT kind, line FROM alarms ORDER BY raised_at, rowid").fetchall()

    def clear_alarms(self) -> int:
        return self.db.execute("DELETE FROM alarms").rowcount
