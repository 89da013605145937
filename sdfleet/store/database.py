"""The database handle: engine creation, SQLite pragmas, transactions and health checks."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

SUPPORTED_SCHEMES = ("sqlite", "postgresql+psycopg", "postgresql")
#: a pooled PostgreSQL connection unused this long is pinged before use (a restarted server dropped it)
PING_AFTER_IDLE_SECONDS = 30.0


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or used; the message is one clear line."""


def _check_scheme(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in SUPPORTED_SCHEMES:
        raise DatabaseUnavailable(
            f"unsupported database URL scheme {scheme!r}; expected sqlite:///path or postgresql+psycopg://user@host/db"
        )
    if scheme == "postgresql":
        return "postgresql+psycopg" + url[len("postgresql") :]
    return url


class Database:
    """One SQLAlchemy engine plus a session factory; SQLite gets WAL, foreign keys and BEGIN IMMEDIATE."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = _check_scheme(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                self.url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
            )
            self._configure_sqlite(self.engine)
        else:
            # LIFO keeps the busy connections warm; a ping only after an idle spell (pool_pre_ping would cost
            # one more transaction per checkout: twice the commits PostgreSQL counts)
            self.engine = create_engine(self.url, echo=echo, pool_use_lifo=True, pool_size=10, max_overflow=20)
            self._ping_when_idle(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._local = threading.local()

    @staticmethod
    def _ping_when_idle(engine: Engine) -> None:
        """SQLAlchemy's pessimistic disconnect check, only for connections idle PING_AFTER_IDLE_SECONDS."""

        @event.listens_for(engine, "checkin")
        def _on_checkin(_dbapi_connection, record) -> None:
            record.info["idle_since"] = time.monotonic()

        @event.listens_for(engine, "checkout")
        def _on_checkout(dbapi_connection, record, _proxy) -> None:
            since = record.info.get("idle_since")
            if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
                return
            try:
                dbapi_connection.autocommit = True
                try:
                    dbapi_connection.execute("SELECT 1")
                finally:
                    dbapi_connection.autocommit = False
            except Exception as exc:  # psycopg.OperationalError: the pool retries with a new connection
                raise DisconnectionError(str(exc)) from exc

    @staticmethod
    def _configure_sqlite(engine: Engine) -> None:
        # pysqlite's own transaction handling defers BEGIN and cannot take a write lock up front;
        # SQLAlchemy's documented recipe: turn it off and emit BEGIN ourselves.
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "")
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

    @contextlib.contextmanager
    def session(self, *, write_lock: bool | None = None) -> Iterator[Session]:
        """A transaction: commits on success, rolls back on error.

        On SQLite the outermost transaction of a thread takes the write lock up front (BEGIN IMMEDIATE)
        unless `write_lock=False` says it only reads: a deferred transaction that reads and then writes
        fails at once with "database is locked" when another writer committed in between (WAL snapshot
        upgrade), and busy_timeout cannot help it. Nested sessions stay deferred so they never wait on
        their own thread's lock."""
        depth = getattr(self._local, "depth", 0)
        immediate = self.is_sqlite and depth == 0 and write_lock is not False
        self._local.depth = depth + 1
        try:
            with self._sessions() as session:
                if immediate:
                    session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        finally:
            self._local.depth = depth

    def on_session_event(self, name: str, listener) -> None:
        """Listen to a session event (`after_commit` …) of every session this database opens."""
        event.listen(self._sessions, name, listener)

    def check(self) -> None:
        """Raise DatabaseUnavailable with one line when the database cannot answer a query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (OperationalError, SQLAlchemyError) as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
            raise DatabaseUnavailable(f"database {self.display_url} is unreachable: {reason}") from exc

    @property
    def display_url(self) -> str:
        """The URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()
