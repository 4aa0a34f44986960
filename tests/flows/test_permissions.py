"""Who may read what, end to end: real files with real modes and groups, the ingest flow, real Chroma and keyword
index, the answer flow with its cache and report, and the CLI's --groups."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from flows.answer import answer_flow
from flows.errors import ConfigError
from flows.ingest import ingest_flow
from tasks.answer.options import RetrievalOptions
from tasks.answer.retrieve import retrieve_context
from tasks.embed.embedder import EmbedderConfig
from tasks.store.base import StoreConfig
from tests.conftest import KBFLOW, store_state

pytestmark = pytest.mark.slow

QUESTION = "What is the monthly range of salary band P3?"
SALARY = (
    "Salary bands. Band P3 pays a monthly range of 6,200 to 7,400 euros before tax. "
    "Bands are reviewed each April by the compensation committee."
)
HANDBOOK = "Employee handbook. The office opens at 8 am. Visitors sign in at the front desk."
ROTA = "Staff rota. The kitchen is cleaned on Fridays by the team on duty."
QWEN = Path.home() / ".local/share/kbflow/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def write(path: Path, text: str, mode: int, gid: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, mode)
    return path


@pytest.fixture
def share(tmp_path, machine_groups):
    """A share as a team keeps it: a public handbook, a staff rota, and hr's salary bands readable by hr only."""
    root = tmp_path / "share"
    write(root / "handbook.txt", HANDBOOK, 0o644)
    write(root / "staff" / "rota.txt", ROTA, 0o640, machine_groups["staff"])
    write(root / "hr" / "salary_bands.txt", SALARY, 0o640, machine_groups["hr"])
    return root


def sources(store: Path, question: str, **options) -> list[str]:
    got = retrieve_context.fn(
        question,
        StoreConfig(store_dir=str(store), collection="knowledge"),
        EmbedderConfig(),
        RetrievalOptions(**options),
    )
    return [p["source"] for p in got["passages"]]


def ingest(share: Path, store: Path) -> dict:
    return ingest_flow(source_path=str(share), store_dir=str(store))


def test_readers_are_recorded_and_every_retrieval_mode_filters_by_them(share, tmp_path, machine_groups):
    store = tmp_path / "store"
    ingest(share, store)
    chunks = store_state(store)["by_source"]
    assert chunks["handbook.txt"][0]["readers"] == ["*"]
    assert (
        "hr" in chunks["hr/salary_bands.txt"][0]["readers"] and "*" not in chunks["hr/salary_bands.txt"][0]["readers"]
    )
    for mode in ("dense", "keyword", "hybrid", "all"):
        assert "hr/salary_bands.txt" not in sources(store, QUESTION, mode=mode), mode
        assert "hr/salary_bands.txt" not in sources(store, QUESTION, mode=mode, for_groups=("staff",)), mode
        assert "hr/salary_bands.txt" in sources(store, QUESTION, mode=mode, for_groups=("hr",)), mode
        assert "hr/salary_bands.txt" in sources(store, QUESTION, mode=mode, all_documents=True), mode
    assert sorted(sources(store, QUESTION, mode="all", for_groups=("staff",))) == ["handbook.txt", "staff/rota.txt"]
    assert sources(store, QUESTION, mode="all") == ["handbook.txt"]


def test_a_permission_change_alone_is_picked_up_by_the_next_refresh_without_embedding(share, tmp_path, machine_groups):
    store = tmp_path / "store"
    ingest(share, store)
    ids = store_state(store)["ids"]
    salary = share / "hr" / "salary_bands.txt"

    os.chmod(salary, 0o644)  # chmod o+r: everyone may read it now
    opened = ingest(share, store)
    assert (opened["readers_changed"], opened["chunks_written"], opened["chunks_deleted"]) == (1, 0, 0)
    assert "hr/salary_bands.txt" in sources(store, QUESTION)
    assert store_state(store)["ids"] == ids  # the same chunks, their readers updated in place

    os.chmod(salary, 0o640)  # chmod o-r and chgrp: staff's now, hr's no more
    os.chown(salary, -1, machine_groups["staff"])
    closed = ingest(share, store)
    assert (closed["readers_changed"], closed["chunks_written"]) == (1, 0)
    assert "hr/salary_bands.txt" not in sources(store, QUESTION)
    assert "hr/salary_bands.txt" not in sources(store, QUESTION, for_groups=("hr",))
    assert "hr/salary_bands.txt" in sources(store, QUESTION, for_groups=("staff",))

    again = ingest(share, store)  # nothing changed: nothing to do
    assert (again["readers_changed"], again["unchanged"], again["chunks_written"]) == (0, 3, 0)


def test_an_access_file_restricts_a_world_readable_file_and_an_edit_to_it_is_picked_up(share, tmp_path):
    store = tmp_path / "store"
    ingest(share, store)
    assert "handbook.txt" in sources(store, "When does the office open?")
    access = share / ".kbflow-access"
    access.write_text("# the handbook is for staff only\nhandbook.txt: staff\n")
    restricted = ingest(share, store)
    assert (restricted["readers_changed"], restricted["chunks_written"]) == (1, 0)
    assert "handbook.txt" not in sources(store, "When does the office open?")
    assert "handbook.txt" in sources(store, "When does the office open?", for_groups=("staff",))
    assert ".kbflow-access" not in store_state(store)["by_source"]

    access.write_text("handbook.txt: staff\nhandbook.txt: *\n")  # the last matching line wins
    reopened = ingest(share, store)
    assert (reopened["readers_changed"], reopened["chunks_written"]) == (1, 0)
    assert "handbook.txt" in sources(store, "When does the office open?")

    (share / "hr" / ".kbflow-access").write_text("salary*: hr\nsalary* hr managers\n")
    before = store_state(store)
    with pytest.raises(ConfigError, match=r"hr/\.kbflow-access, line 2: no ':'"):
        ingest(share, store)
    after = store_state(store)  # nothing was written
    assert after["ids"] == before["ids"]
    assert {p: e.ref.readers for p, e in after["ledger_docs"].items()} == {
        p: e.ref.readers for p, e in before["ledger_docs"].items()
    }


def report_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


@pytest.mark.skipif(
    not QWEN.exists(), reason=f"needs the pulled Qwen model ({QWEN}): `kbflow models pull qwen2.5-1.5b`"
)
def test_an_hr_only_answer_is_not_found_for_staff_answered_for_hr_and_never_reused_for_staff(
    share, tmp_path, monkeypatch
):
    store = tmp_path / "store"
    ingest(share, store)
    salary_ids = [c["id"] for c in store_state(store)["by_source"]["hr/salary_bands.txt"]]
    monkeypatch.setenv("KBFLOW_MAX_TOKENS", "40")
    monkeypatch.setenv("KBFLOW_SEED", "0")

    def ask(groups: str, out: str) -> tuple[dict, dict, Path]:
        folder = tmp_path / out
        summary = answer_flow(
            question=QUESTION, store_dir=str(store), out_dir=str(folder), llm_model=str(QWEN), groups=groups
        )
        row = json.loads((folder / "rows.jsonl").read_text().splitlines()[0])
        return summary, row, folder

    staff, row, folder = ask("staff", "staff-1")
    assert row["refused"] and row["answer"].startswith("Not found in the knowledge base")
    assert staff["groups"] == ["staff"] and "staff" in staff["audience"]
    text = report_text(folder)
    assert "staff" in (folder / "report.html").read_text()
    for secret in ["salary_bands", "6,200", "7,400", "compensation committee", *salary_ids]:
        assert secret not in text, f"{secret!r} is in the staff report"

    hr, row, folder = ask("hr", "hr")
    assert not row["refused"] and ("6,200" in row["answer"] or "6200" in row["answer"]), row["answer"]
    assert row["answer_source"] == "generated" and row["citations"][0]["source"] == "hr/salary_bands.txt"

    again, row, folder = ask("staff", "staff-2")
    assert row["refused"] and row["answer_source"] is None and "6,200" not in row["answer"]
    assert again["answers_reused"] == 0
    text = report_text(folder)
    for secret in ["salary_bands", "6,200", "7,400", "compensation committee", *salary_ids]:
        assert secret not in text, f"{secret!r} is in the second staff report (a comparison with the hr run?)"


def test_cli_groups_and_kbflow_groups_and_the_administrators_all_documents(share, tmp_path, cli_env):
    store = tmp_path / "store"
    ingest(share, store)

    def ask(*extra, env=None):
        proc = subprocess.run(
            [KBFLOW, "ask", QUESTION, "--store", str(store), "--retrieval-only", "--json", *extra],
            capture_output=True,
            text=True,
            env={**cli_env, "KBFLOW_WARM": "false", **(env or {})},
            timeout=300,
        )
        return proc

    def retrieved(proc) -> list[str]:
        assert proc.returncode == 0, proc.stderr
        return [p["source"] for p in json.loads(proc.stdout)["retrieved"]]

    assert "hr/salary_bands.txt" not in retrieved(ask())
    assert "hr/salary_bands.txt" not in retrieved(ask("--groups", "staff"))
    assert "hr/salary_bands.txt" in retrieved(ask("--groups", "staff,hr"))
    assert "hr/salary_bands.txt" in retrieved(ask(env={"KBFLOW_GROUPS": "hr"}))
    assert "hr/salary_bands.txt" in retrieved(ask("--all-documents"))
    both = ask("--groups", "hr", "--all-documents")
    assert both.returncode == 2 and "not both" in both.stderr
    bad = ask("--groups", "human resources")
    assert bad.returncode == 2 and "'human resources' is not a group name" in bad.stderr
