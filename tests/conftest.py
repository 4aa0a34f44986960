"""Shared fixtures: one Prefect test harness per session, real stores in temporary folders."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tasks.offline import apply_offline_env

apply_offline_env()


# Every CPU the test run may use, before a worker keeps to its own share (for a test of the whole machine).
MACHINE_CPUS = sorted(os.sched_getaffinity(0))


@pytest.fixture
def whole_machine():
    """This test process on every CPU of the run (its worker's share again afterwards)."""
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, MACHINE_CPUS)
    try:
        yield MACHINE_CPUS
    finally:
        os.sched_setaffinity(0, own)


def _own_cpus_per_worker() -> None:
    """Under `pytest -n N`, each worker, and every server, command and model thread it starts, runs on its own share
    of the CPUs. Otherwise each worker's llama.cpp, torch and OpenVINO size their thread pools for the whole machine,
    and two such pools on 2 cores spin against each other: beside a torch training job, SmolLM2 wrote 129 tokens in 60
    s. kbflow sizes every pool from the CPUs a process may use (tasks.machine.cpu_count)."""
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if count > 1 and worker.startswith("gw") and len(MACHINE_CPUS) >= count:
        os.sched_setaffinity(0, MACHINE_CPUS[int(worker[2:]) % count :: count])


_own_cpus_per_worker()

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
DEMO_CORPUS = REPO / "docs" / "demo" / "corpus"


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session, with the per-flow heartbeat off."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield


@pytest.fixture(autouse=True)
def _prefect_unless_unit(request):
    """Every test but the `unit` ones runs against the session's Prefect API, started on first need."""
    if request.node.get_closest_marker("unit") is None:
        request.getfixturevalue("prefect_harness")


def cjk_font_path() -> Path:
    """WenQuanYi Micro Hei from the paperang-p2-fonts-cjk wheel (a dev dependency): no CJK font is on the system."""
    import importlib.util

    spec = importlib.util.find_spec("paperang_p2_fonts_cjk")
    assert spec is not None, "paperang-p2-fonts-cjk (dev dependency) is not installed: run make install"
    return Path(spec.submodule_search_locations[0]) / "fonts" / "wqy-microhei.ttc"


# No pulled models in tests: the default model 'auto' is the bundled SmolLM2 on every machine.
NO_MODELS = Path(__file__).parent / "data" / "no-models"


@pytest.fixture(autouse=True)
def _clean_kbflow_env(monkeypatch):
    """Tests start from the defaults, whatever the developer's shell exports or has pulled."""
    for key in list(os.environ):
        if key.startswith("KBFLOW_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KBFLOW_MODELS_DIR", str(NO_MODELS))


@pytest.fixture(scope="session")
def machine_groups():
    """The groups `hr` and `staff` as real groups of this machine, made when missing and the tests run as root (and
    left: another test process may be using them). Readers are read from real file groups, so a machine without them
    and without root cannot run these tests."""
    import grp
    import subprocess

    for name in ("hr", "staff"):
        try:
            grp.getgrnam(name)
        except KeyError:
            if os.geteuid() != 0:
                pytest.skip(f"group {name!r} does not exist here, and only root may create it (groupadd)")
            subprocess.run(["groupadd", "-f", name], check=True)  # -f: another process made it meanwhile
    return {name: grp.getgrnam(name).gr_gid for name in ("hr", "staff")}


@pytest.fixture
def store_dir(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def docs_dir(tmp_path) -> Path:
    """A folder with a few small real documents (copied from tests/data/docs)."""
    target = tmp_path / "docs"
    shutil.copytree(DATA / "docs", target)
    return target


def store_state(store: Path, collection: str = "knowledge", chroma_host: str | None = None) -> dict:
    """What a user would check in the store (embedded, or a Chroma server): chunks by source, and whether Chroma and
    the ledger agree."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from tasks.ingest.ledger import Ledger

    settings = ChromaSettings(anonymized_telemetry=False)
    if chroma_host:
        name, _, port = chroma_host.rpartition(":")
        client = chromadb.HttpClient(host=name, port=int(port), settings=settings)
    else:
        client = chromadb.PersistentClient(path=str(Path(store) / "chroma"), settings=settings)
    coll = client.get_collection(collection, embedding_function=None)
    got = coll.get(include=["metadatas", "documents"])
    by_source: dict[str, list[dict]] = {}
    for cid, meta, text in zip(got["ids"], got["metadatas"], got["documents"]):
        by_source.setdefault(meta["source"], []).append({"id": cid, "text": text, **meta})
    for chunks in by_source.values():
        chunks.sort(key=lambda c: c["chunk_index"])
    with Ledger.of_store(store, collection) as ledger:
        ledger_ids = ledger.all_chunk_ids()
        docs = {e.ref.path: e for e in ledger.documents().values()}
    return {"by_source": by_source, "ids": set(got["ids"]), "ledger_ids": ledger_ids, "ledger_docs": docs}


def assert_store_matches_folder(
    store: Path, folder: Path, collection: str = "knowledge", expect_missing=(), chroma_host: str | None = None
) -> dict:
    """Every indexable file has exactly its current version's chunks, nothing else is stored."""
    import hashlib

    state = store_state(store, collection, chroma_host)
    assert state["ids"] == state["ledger_ids"], "Chroma and the ledger disagree"
    files = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }
    expected = {p: h for p, h in files.items() if p not in set(expect_missing)}
    assert set(state["by_source"]) == set(expected)
    for path, chunks in state["by_source"].items():
        assert {c["doc_sha256"] for c in chunks} == {expected[path]}, f"{path} holds chunks of an old version"
        assert [c["chunk_index"] for c in chunks] == list(range(len(chunks))), f"{path} has duplicate or missing chunks"
    return state


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc, timeout: float = 20) -> None:
    """SIGTERM a child process, then SIGKILL it if it has not exited within `timeout` seconds."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def cli_env(prefect_harness) -> dict:
    """Environment for `kbflow` subprocesses: the session's Prefect API, offline, sockets as the tests."""
    return kbflow_env()


def kbflow_env() -> dict:
    """cli_env's value, for a fixture of wider scope (the session's Prefect harness must be running)."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("KBFLOW_")}
    env["KBFLOW_MODELS_DIR"] = str(NO_MODELS)
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    return env


# The console script of the interpreter running the tests (the project's .venv under `make test`).
KBFLOW = str(Path(sys.executable).parent / "kbflow")


# --- The demo corpus, ingested once per test process (issue 26, part 5: the suite's time) ---------------------


@pytest.fixture(scope="session")
def demo_kb(tmp_path_factory, prefect_harness) -> Path:
    """The demo corpus ingested once per test process (each xdist worker): `corpus/` and `store/` in the returned
    folder. The store's source is that corpus folder's path. Tests never change either: they copy the store
    (`demo_store_copy`), and edit the corpus only through `demo_corpus_restored`."""
    from flows.ingest import ingest_flow

    root = tmp_path_factory.mktemp("demo-kb")
    corpus = shutil.copytree(DEMO_CORPUS, root / "corpus")
    summary = ingest_flow(source_path=str(corpus), store_dir=str(root / "store"))
    assert summary["failed"] == []
    return root


def demo_store_copy(demo_kb: Path, target: Path) -> Path:
    """A private copy of the ingested demo store at `target` (its source is still demo_kb's corpus)."""
    return Path(shutil.copytree(demo_kb / "store", target))


@pytest.fixture
def demo_corpus_restored(demo_kb) -> Path:
    """demo_kb's corpus, for a test that edits it: put back as ingested (contents and mtimes) after the test."""
    corpus = demo_kb / "corpus"
    yield corpus
    shutil.rmtree(corpus)
    shutil.copytree(DEMO_CORPUS, corpus)
