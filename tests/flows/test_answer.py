"""The query flow with the real store, the real embedding model and the bundled SmolLM2."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from flows.answer import answer_flow
from flows.ingest import ingest_flow
from tasks.answer.options import RetrievalOptions
from tasks.answer.retrieve import retrieve_context
from tasks.embed.embedder import EmbedderConfig
from tasks.store.base import StoreConfig
from tasks.text import is_chinese
from tests.conftest import KBFLOW, REPO, demo_store_copy

pytestmark = pytest.mark.slow

DEMO_QUESTIONS = REPO / "docs" / "demo" / "questions.csv"


@pytest.fixture(scope="module")
def demo_store(demo_kb, tmp_path_factory):
    """The demo corpus as ingested once per test process, in this module's own copy of the store (its tests add
    reports and cached answers, never documents)."""
    return demo_store_copy(demo_kb, tmp_path_factory.mktemp("demo") / "store")


def retrieve(store, question, **options):
    """The retrieve-context task's logic, run directly."""
    return retrieve_context.fn(
        question,
        StoreConfig(store_dir=str(store), collection="knowledge"),
        EmbedderConfig(),
        RetrievalOptions(**options),
    )


@pytest.fixture
def count_generations(monkeypatch):
    import tasks.answer.generate as generate_mod

    calls = []
    real = generate_mod.answer_question

    def counting(backend, question, passages, **kw):
        calls.append(question)
        return real(backend, question, passages, **kw)

    monkeypatch.setattr(generate_mod, "answer_question", counting)
    return calls


def write_csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_demo_questions_end_to_end_report_is_complete(demo_store, tmp_path, count_generations, monkeypatch):
    # SmolLM2's answers here end by themselves within 14-24 tokens, and cite first; the few that loop (repeating a
    # Chinese heading) ran to 256 tokens, 31-99 s each on a busy machine. 64 tokens cut the loops, not the answers.
    monkeypatch.setenv("KBFLOW_MAX_TOKENS", "64")
    out = tmp_path / "report"
    summary = answer_flow(questions_path=str(DEMO_QUESTIONS), store_dir=str(demo_store), out_dir=str(out))
    assert {p.name for p in out.iterdir()} >= {"answers.csv", "answers.xlsx", "summary.json", "report.html"}

    table = pd.read_csv(out / "answers.csv", keep_default_na=False)
    questions = pd.read_csv(DEMO_QUESTIONS, keep_default_na=False)
    assert list(table["id"]) == list(questions["id"])
    # The input file's columns first, in its order, then kbflow's.
    assert list(table.columns[:11]) == [
        "id",
        "question",
        "expected_answer",
        "expected_source",
        "answer",
        "refused",
        "citations",
        "retrieved",
        "latency_ms",
        "prompt_tokens",
        "completion_tokens",
    ]
    assert {"hit", "reciprocal_rank", "exact_match", "f1"} <= set(table.columns)
    for _, row in table.iterrows():
        retrieved = json.loads(row["retrieved"])
        assert len(retrieved) == 5 and all({"source", "page", "chunk_id", "score"} <= set(r) for r in retrieved)
        scores = [r["score"] for r in retrieved]
        assert all(isinstance(x, float) and 0 <= x <= 1 for x in scores)
        assert scores[0] >= max(scores[1:]) or row["refused"] in (True, "True")  # the best passage comes first
        assert float(row["latency_ms"]) > 0 and row["answer"].strip()
        citations = json.loads(row["citations"])
        # Every citation points at a passage that was retrieved for this question.
        assert all(c["source"] in {r["source"] for r in retrieved} for c in citations)
        if row["refused"] in (True, "True"):
            assert int(row["prompt_tokens"]) == 0
        else:
            assert int(row["prompt_tokens"]) > 0 and int(row["completion_tokens"]) > 0
    # The model cited something: the citation checks above ran on real citations, not on none.
    answered = table[table["refused"].astype(str) != "True"]
    assert sum(bool(json.loads(c)) for c in answered["citations"]) >= len(answered) // 2
    # The unanswerable questions are refused without a model call; every other one calls the model once, and once
    # more where the report flagged its answer and the other language has passages close to its question.
    refused = set(table.loc[table["refused"].astype(str) == "True", "id"])
    assert refused == {"none-01", "none-02"}
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    looked = [r for r in rows if (r.get("other_language_look") or {}).get("passages")]
    assert len(count_generations) == len(table) - 2 + len(looked) and summary["other_language_looks"] == len(looked)
    for row in (r for r in looked if r["other_language_look"]["kept"]):
        # The look's answer replaced the first only because the report does not flag it; it cites the look's passages.
        assert not row["flag_reason"] and row["citations"]
        assert {c["chunk_id"] for c in row["citations"]} <= {p["chunk_id"] for p in row["look_passages"]}
    # Asked in one language, then the other (the prompt's cached prefix is per language); reported in file order.
    languages = [is_chinese(q) for q in count_generations]
    assert sum(a != b for a, b in zip(languages, languages[1:])) == 1
    assert summary["refused"] == 2 and summary["errors"] == 0
    assert summary["recall_at_k"] >= 0.9 and summary["mrr"] >= 0.8
    saved = json.loads((out / "summary.json").read_text())
    assert saved["questions"] == 15 and saved["top_k"] == 5 and saved["embedding_model"] == "multilingual-use-v3"
    assert saved["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert saved["latency_ms_p95"] >= saved["latency_ms_p50"] > 0


@pytest.mark.parametrize(
    "question, expected",
    [
        ("How many days do customers have to return a product after delivery?", "policies/refund_policy.docx"),
        ("Which error code does the S7 show when the main brush is jammed?", "products/starling_s7_manual.pdf"),
        ("在公司工作满3年的员工每年有几天带薪年假？", "hr/leave_policy_zh.txt"),
        ("Dock D3 的清水箱容量是多少？", "products/dock_d3_guide_zh.md"),
    ],
)
def test_the_document_holding_the_answer_is_retrieved_first(demo_store, question, expected):
    got = retrieve(demo_store, question, top_k=5, mode="hybrid")
    assert got["passages"][0]["source"] == expected


def test_keyword_and_dense_modes_and_source_filter(demo_store):
    zh = "出差到柏林每晚住宿费最多可以报销多少？"
    keyword = retrieve(demo_store, zh, top_k=3, mode="keyword")
    assert keyword["passages"][0]["source"] == "policies/travel_expense_policy_zh.docx"
    assert all(p["dense_score"] is None for p in keyword["passages"])
    dense = retrieve(demo_store, "What is the battery warranty of the S7?", top_k=3, mode="dense")
    assert all(p["keyword_score"] is None for p in dense["passages"]) and len(dense["passages"]) == 3
    filtered = retrieve(demo_store, "warranty", top_k=5, mode="hybrid", source_prefix="policies/")
    assert filtered["passages"] and all(p["source"].startswith("policies/") for p in filtered["passages"])


def test_retrieval_only_fills_every_retrieval_column_and_metric(demo_store, tmp_path, count_generations):
    qs = write_csv(
        tmp_path / "q.csv",
        [
            {
                "id": "a",
                "question": "How many fingerprints can the Lock L2 store?",
                "expected_answer": "100 fingerprints",
                "expected_source": "lock_l2_quickstart.md",
            },
            {
                "id": "b",
                "question": "What is the phone number of the Munich service center?",
                "expected_answer": "+49 89 2015 4470",
                "expected_source": "support/service_centers.csv",
            },
        ],
    )
    summary = answer_flow(
        questions_path=str(qs), store_dir=str(demo_store), out_dir=str(tmp_path / "r"), retrieval_only=True, top_k=3
    )
    assert count_generations == []
    table = pd.read_csv(tmp_path / "r" / "answers.csv", keep_default_na=False)
    assert list(table["hit"].astype(str)) == ["True", "True"]
    assert list(table["reciprocal_rank"]) == [1.0, 1.0]
    assert all(len(json.loads(r)) == 3 for r in table["retrieved"])
    assert summary["recall_at_k"] == 1.0 and summary["mrr"] == 1.0 and summary["model"] == "(retrieval only)"


def test_cli_ask_json_prints_the_summary_and_rejects_bad_files(demo_store, tmp_path, cli_env):
    qs = tmp_path / "q.txt"
    qs.write_text("What is the return window?\n火星的首都是哪里？\n", encoding="utf-8")
    proc = subprocess.run(
        [KBFLOW, "ask", str(qs), "--store", str(demo_store), "--retrieval-only", "--json", "--top-k", "2"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["questions"] == 2 and summary["refused"] == 1 and summary["top_k"] == 2
    report_dir = summary["report_dir"]
    assert report_dir.startswith(str(demo_store / "reports"))
    assert json.loads((tmp_path.parent / report_dir / "summary.json").read_text())["questions"] == 2

    bad = tmp_path / "bad.csv"
    bad.write_text("id,question\n1,Fine question?\n2,\n", encoding="utf-8")
    proc = subprocess.run(
        [KBFLOW, "ask", str(bad), "--store", str(demo_store)], env=cli_env, capture_output=True, text=True, timeout=600
    )
    assert (
        proc.returncode == 2 and "bad.csv" in proc.stderr and "row 3" in proc.stderr and "empty question" in proc.stderr
    )

    listed = subprocess.run(
        [KBFLOW, "reports", "--store", str(demo_store), "--json"], env=cli_env, capture_output=True, text=True
    )
    assert any(r["report"] == report_dir and r["questions"] == 2 for r in json.loads(listed.stdout))


def test_a_failing_question_is_recorded_and_the_others_go_on(demo_store, tmp_path, monkeypatch):
    import tasks.answer.generate as generate_mod
    from flows.errors import QuestionsFailed
    from tasks.answer.backends import GenerationError

    real = generate_mod.answer_question

    def flaky(backend, question, passages, **kw):
        if "fingerprints" in question:
            raise GenerationError("the model crashed")
        return real(backend, question, passages, **kw)

    monkeypatch.setattr(generate_mod, "answer_question", flaky)
    monkeypatch.setenv("KBFLOW_MAX_TOKENS", "48")  # the other question needs an answer, not a long one
    qs = write_csv(
        tmp_path / "q.csv",
        [
            {"question": "How many fingerprints can the Lock L2 store?"},
            {"question": "What is the return window after delivery?"},
        ],
    )
    with pytest.raises(QuestionsFailed) as info:
        answer_flow(questions_path=str(qs), store_dir=str(demo_store), out_dir=str(tmp_path / "r"))
    assert info.value.summary["errors"] == 1 and info.value.summary["questions"] == 2
    table = pd.read_csv(tmp_path / "r" / "answers.csv", keep_default_na=False)
    assert "the model crashed" in table.loc[0, "error"] and table.loc[1, "error"] == ""
    assert table.loc[1, "answer"].strip()


def test_keyword_index_follows_the_store(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The zebra enclosure opens at noon.")
    (docs / "b.txt").write_text("The penguin pool closes at five.")
    store = tmp_path / "store"
    ingest_flow(source_path=str(docs), store_dir=str(store))
    assert retrieve(store, "zebra enclosure", mode="keyword")["passages"][0]["source"] == "a.txt"
    (docs / "a.txt").unlink()
    (docs / "c.txt").write_text("The giraffe house has a new zebra mural.")
    ingest_flow(source_path=str(docs), store_dir=str(store))
    sources = [p["source"] for p in retrieve(store, "zebra enclosure", mode="keyword")["passages"]]
    assert sources == ["c.txt"]
