"""Keep the simulated axis's state in SQLite (WAL) and its packages as files, so a restart loses nothing.

Tables: `agencies` (the directory, with the systemid each agency is attached to), `messages`
(one row per accepted sendEdoc), `deliveries` (one row per recipient copy: its own receiver
docId, its status, and the key used to spot a duplicate delivery), `counters` and `meta`.
Package bytes never go into the database: `messages.path` names a file in the data directory.
All calls are synchronous and short; the server makes them from its event loop thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agencies (
    id        INTEGER PRIMARY KEY,
    code      TEXT NOT NULL UNIQUE,
    code20    TEXT NOT NULL DEFAULT '',
    name      TEXT NOT NULL DEFAULT '',
    mail      TEXT NOT NULL DEFAULT '',
    mobile    TEXT NOT NULL DEFAULT '',
    fax       TEXT NOT NULL DEFAULT '',
    pcode     TEXT NOT NULL DEFAULT '',
    old_code  TEXT NOT NULL DEFAULT '',
    systemid  TEXT
);
CREATE INDEX IF NOT EXISTS agencies_systemid ON agencies(systemid);
CREATE TABLE IF NOT EXISTS messages (
    doc_id        TEXT PRIMARY KEY,
    systemid      TEXT NOT NULL,
    from_code     TEXT NOT NULL,
    message_type  TEXT NOT NULL,
    service_type  TEXT NOT NULL,
    document_id   TEXT NOT NULL DEFAULT '',
    title         TEXT NOT NULL DEFAULT '',
    notation      TEXT NOT NULL DEFAULT '',
    status_code   TEXT NOT NULL DEFAULT '',
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    path          TEXT NOT NULL,
    created_time  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_systemid ON messages(systemid, message_type);
CREATE TABLE IF NOT EXISTS deliveries (
    receiver_doc_id TEXT PRIMARY KEY,
    doc_id          TEXT NOT NULL REFERENCES messages(doc_id),
    to_code         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'initial',
    status_desc     TEXT NOT NULL DEFAULT '',
    created_time    TEXT NOT NULL,
    updated_time    TEXT NOT NULL,
    received_time   TEXT NOT NULL DEFAULT '',
    fetch_count     INTEGER NOT NULL DEFAULT 0,
    dedupe_key      TEXT,
    duplicate_of    TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_to ON deliveries(to_code, status);
CREATE INDEX IF NOT EXISTS deliveries_doc ON deliveries(doc_id);
CREATE INDEX IF NOT EXISTS deliveries_key ON deliveries(dedupe_key);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT NOT NULL,
    label TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (name, label)
);
"""

PENDING = ("initial", "processing")


@dataclass(frozen=True)
class NewDelivery:
    receiver_doc_id: str
    to_code: str
    dedupe_key: str | None


class Store:
    def __init__(self, db_path: str | Path) -> None:
        self._db = sqlite3.connect(str(db_path), isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _tx(self):
        return _Transaction(self._db)

    # --- directory ---------------------------------------------------------------------------

    def apply_seed(self, agencies: Sequence[Mapping[str, Any]], digest: str) -> bool:
        """Load a seed once per distinct content; existing agencies are left as they are."""
        key = f"seed:{digest}"
        if self._db.execute("SELECT 1 FROM meta WHERE key = ?", (key,)).fetchone():
            return False
        with self._tx():
            for row in agencies:
                self._db.execute(
                    "INSERT OR IGNORE INTO agencies (code, code20, name, mail, mobile, fax, pcode,"
                    " old_code, systemid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row["code"], row.get("code20", ""), row.get("name", ""),
                     row.get("mail", ""), row.get("mobile", ""), row.get("fax", ""),
                     row.get("pcode", ""), row.get("oldCode", ""), row.get("systemid") or None))
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, "applied"))
        return True

    def agency(self, code: str) -> sqlite3.Row | None:
        return self._db.execute("SELECT * FROM agencies WHERE code = ?", (code,)).fetchone()

    def agencies(self) -> list[sqlite3.Row]:
        return self._db.execute(
            "SELECT a.*, p.id AS pid FROM agencies a LEFT JOIN agencies p ON p.code = a.pcode"
            " ORDER BY a.code").fetchall()

    def register(self, systemid: str, fields: Mapping[str, str]) -> None:
        code = fields["code"]
        with self._tx():
            if self.agency(code) is None:
                self._db.execute(
                    "INSERT INTO agencies (code, name, mail, mobile, fax, pcode, systemid)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (code, fields.get("name", ""), fields.get("mail", ""),
                     fields.get("mobile", ""), fields.get("fax", ""), fields.get("pcode", ""),
                     systemid))
            else:
                updates = {k: v for k, v in fields.items()
                           if k in ("name", "mail", "mobile", "fax", "pcode") and v}
                sets = "".join(f", {k} = ?" for k in updates)
                self._db.execute(f"UPDATE agencies SET systemid = ?{sets} WHERE code = ?",
                                 (systemid, *updates.values(), code))

    def detach(self, code: str) -> None:
        self._db.execute("UPDATE agencies SET systemid = NULL WHERE code = ?", (code,))

    # --- messages ------------------------------------------------------------------------------

    def add_message(self, message: Mapping[str, Any],
                    deliveries: Iterable[NewDelivery]) -> list[str]:
        """Store one accepted message and its recipient copies in one transaction; return the
        receiver docIds that duplicate an earlier delivery (same sender document, same recipient)."""
        duplicates: list[str] = []
        now = message["created_time"]
        with self._tx():
            self._db.execute(
                "INSERT INTO messages (doc_id, systemid, from_code, message_type, service_type,"
                " document_id, title, notation, status_code, size, sha256, path, created_time)"
                " VALUES (:doc_id, :systemid, :from_code, :message_type, :service_type,"
                " :document_id, :title, :notation, :status_code, :size, :sha256, :path,"
                " :created_time)", dict(message))
            for item in deliveries:
                first = None
                if item.dedupe_key is not None:
                    row = self._db.execute(
                        "SELECT receiver_doc_id FROM deliveries WHERE dedupe_key = ?"
                        " ORDER BY rowid LIMIT 1", (item.dedupe_key,)).fetchone()
                    first = row["receiver_doc_id"] if row else None
                self._db.execute(
                    "INSERT INTO deliveries (receiver_doc_id, doc_id, to_code, created_time,"
                    " updated_time, dedupe_key, duplicate_of) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (item.receiver_doc_id, message["doc_id"], item.to_code, now, now,
                     item.dedupe_key, first))
                if first is not None:
                    duplicates.append(item.receiver_doc_id)
        return duplicates

    def received(self, systemid: str, message_type: str) -> list[sqlite3.Row]:
        return self._db.execute(
            "SELECT d.*, m.from_code, m.message_type, m.service_type FROM deliveries d"
            " JOIN messages m ON m.doc_id = d.doc_id JOIN agencies a ON a.code = d.to_code"
            " WHERE a.systemid = ? AND m.message_type = ? AND d.status IN (?, ?)"
            " ORDER BY d.rowid", (systemid, message_type, *PENDING)).fetchall()

    def delivery_for(self, systemid: str, receiver_doc_id: str) -> sqlite3.Row | None:
        """A recipient copy, if the calling systemid serves its recipient agency."""
        return self._db.execute(
            "SELECT d.*, m.path, m.size, m.message_type FROM deliveries d"
            " JOIN messages m ON m.doc_id = d.doc_id JOIN agencies a ON a.code = d.to_code"
            " WHERE d.receiver_doc_id = ? AND a.systemid = ?",
            (receiver_doc_id, systemid)).fetchone()

    def mark_fetched(self, receiver_doc_id: str) -> None:
        self._db.execute("UPDATE deliveries SET fetch_count = fetch_count + 1"
                         " WHERE receiver_doc_id = ?", (receiver_doc_id,))

    def set_status(self, receiver_doc_id: str, status: str, desc: str, now: str) -> None:
        received = now if status == "done" else ""
        self._db.execute(
            "UPDATE deliveries SET status = ?, status_desc = ?, updated_time = ?,"
            " received_time = CASE WHEN ? != '' THEN ? ELSE received_time END"
            " WHERE receiver_doc_id = ?", (status, desc, now, received, received, receiver_doc_id))

    def sent(self, systemid: str, message_type: str, doc_id: str | None) -> list[sqlite3.Row]:
        query = ("SELECT m.*, d.receiver_doc_id, d.to_code, d.status AS receive_status,"
                 " d.status_desc AS receive_status_desc, d.received_time FROM messages m"
                 " JOIN deliveries d ON d.doc_id = m.doc_id"
                 " WHERE m.systemid = ? AND m.message_type = ?")
        args: list[Any] = [systemid, message_type]
        if doc_id:
            query += " AND m.doc_id = ?"
            args.append(doc_id)
        return self._db.execute(query + " ORDER BY d.rowid", args).fetchall()

    def mailbox(self, code: str | None) -> list[sqlite3.Row]:
        query = ("SELECT d.*, m.from_code, m.message_type, m.document_id, m.systemid AS sender,"
                 " m.size, m.sha256 FROM deliveries d JOIN messages m ON m.doc_id = d.doc_id")
        if code:
            return self._db.execute(query + " WHERE d.to_code = ? ORDER BY d.rowid",
                                    (code,)).fetchall()
        return self._db.execute(query + " ORDER BY d.rowid").fetchall()

    def duplicates(self) -> list[sqlite3.Row]:
        return self._db.execute(
            "SELECT d.receiver_doc_id, d.duplicate_of, d.to_code, d.doc_id, m.from_code,"
            " m.document_id, m.message_type, m.status_code FROM deliveries d"
            " JOIN messages m ON m.doc_id = d.doc_id WHERE d.duplicate_of IS NOT NULL"
            " ORDER BY d.rowid").fetchall()

    def pending_counts(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT m.message_type, COUNT(*) AS n FROM deliveries d JOIN messages m"
            " ON m.doc_id = d.doc_id WHERE d.status IN (?, ?) GROUP BY m.message_type",
            PENDING).fetchall()
        return {row["message_type"]: row["n"] for row in rows}

    # --- counters ----------------------------------------------------------------------------

    def bump(self, name: str, label: str = "", by: int = 1) -> None:
        self._db.execute(
            "INSERT INTO counters (name, label, value) VALUES (?, ?, ?)"
            " ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value",
            (name, label, by))

    def counters(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for row in self._db.execute("SELECT * FROM counters ORDER BY name, label"):
            out.setdefault(row["name"], {})[row["label"]] = row["value"]
        return out


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def row_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()}
