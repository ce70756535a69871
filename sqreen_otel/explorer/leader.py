"""Which of several ``serve`` replicas on one PostgreSQL database evaluates the playbooks.

A session advisory lock (``pg_try_advisory_lock``) held on a connection of its own: the replica
whose session holds it is the leader. When the leader dies or loses its connection, PostgreSQL ends
the session and releases the lock, and the next replica that tries takes it. The key is the
explorer's constant with the schema's hash, so explorers on other schemas of the same database keep
leaders of their own. A lease is only as good as its session: ``held()`` checks it, and the cursor
fence in ``alerts.Records.record`` keeps a leader that lost it without noticing from writing.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import psycopg

logger = logging.getLogger("sqreen_otel.explorer")

PLAYBOOKS_LOCK = 0x5351_0003  # beside store_pg's 0x5351_0001 (actions) and 0x5351_0002 (migrations)


class Leadership:
    """The playbooks' leader lock of the database at ``url``; ``try_acquire()`` never waits."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def leader(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        """Take the lock if no session holds it; ``True`` when this replica is (now) the leader."""
        if self._conn is not None:
            return self.held()
        try:
            conn = psycopg.connect(self.url, autocommit=True, application_name="sqreen-otel playbooks leader")
        except psycopg.Error as exc:
            logger.warning("playbooks: cannot connect to elect a leader: %s", exc)
            return False
        try:
            sql = "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))"
            row = conn.execute(sql, (PLAYBOOKS_LOCK,)).fetchone()
        except psycopg.Error as exc:
            logger.warning("playbooks: leader election failed: %s", exc)
            conn.close()
            return False
        if not (row and row[0]):
            conn.close()
            return False
        self._conn = conn
        return True

    def held(self) -> bool:
        """Whether the lock's session is still alive (a round trip); ``False`` also forgets the lock."""
        conn = self._conn
        if conn is None:
            return False
        try:
            conn.execute("SELECT 1")
        except psycopg.Error as exc:
            logger.error("playbooks: the leader's session was lost (%s); stepping down", exc)
            self.release()
            return False
        return True

    def release(self) -> None:
        """End the session, which releases the lock for another replica."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):  # already broken: the server ends the session anyway
                conn.close()
