"""A new store's Prefect home starts from the database `make install` migrated, when that is safe."""

from __future__ import annotations

import sqlite3

import pytest

from kbflow import prefect_server

pytestmark = pytest.mark.unit


@pytest.fixture
def template(tmp_path, monkeypatch):
    """An install template holding a small SQLite database, made by this Prefect version."""
    folder = tmp_path / "template"
    folder.mkdir()
    with sqlite3.connect(folder / "prefect.db") as db:
        db.execute("CREATE TABLE alembic_version (version_num TEXT)")
        db.execute("INSERT INTO alembic_version VALUES ('ready')")
    (folder / "version").write_text(prefect_server._prefect_version())
    monkeypatch.setattr(prefect_server, "template_home", lambda: folder)
    for name in ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        monkeypatch.delenv(name, raising=False)
    return folder


def migrated(db) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_a_new_home_gets_the_install_database(template, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert prefect_server.seed_home(home) is True
    assert migrated(home / "prefect.db") == "ready"
    assert not list(home.glob("*.seeding"))


def test_an_existing_database_is_never_replaced(template, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "prefect.db").write_bytes(b"the user's run history")
    assert prefect_server.seed_home(home) is False
    assert (home / "prefect.db").read_bytes() == b"the user's run history"


def test_a_template_of_another_prefect_version_is_not_used(template, tmp_path):
    (template / "version").write_text("2.0.0")
    home = tmp_path / "home"
    home.mkdir()
    assert prefect_server.seed_home(home) is False
    assert not (home / "prefect.db").exists()


def test_no_template_or_another_database_means_prefect_makes_its_own(template, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://db/prefect")
    assert prefect_server.seed_home(home) is False
    monkeypatch.delenv("PREFECT_API_DATABASE_CONNECTION_URL")
    (template / "prefect.db").unlink()
    assert prefect_server.seed_home(home) is False
    assert not (home / "prefect.db").exists()
