"""Two synthetic runs that differ in known ways, compared as a reader would read the change list."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.report.compare import compare_reports, comparison_markdown, find_previous_report, load_rows
from tasks.report.write import write_report

pytestmark = pytest.mark.unit

POLICY = "Refund policy document: refunds are paid within 14 days. Premium costs 42 euros a month."


def row(qid: str, question: str, answer: str, **kw) -> dict:
    base = {
        "id": qid,
        "question": question,
        "answer": answer,
        "refused": False,
        "error": None,
        "citations": [{"source": "policy.docx", "page": 1, "chunk_id": "c1", "text": POLICY}],
        "retrieved": [{"source": "policy.docx", "page": 1, "chunk_id": "c1", "score": 0.9, "text": POLICY}],
        "latency_ms": 100.0,
        "expected_answer": None,
        "expected_source": None,
    }
    base.update(kw)
    return base


def old_rows() -> list[dict]:
    return [
        # answer will change
        row(
            "q1",
            "How long do refunds take?",
            "Refunds are paid within 14 days [1].",
            expected_answer="14 days",
            expected_source="policy.docx",
            latency_ms=100.0,
        ),
        # will be refused
        row(
            "q2",
            "What does premium cost?",
            "Premium costs 42 euros a month [1].",
            expected_answer="42 euros",
            latency_ms=200.0,
        ),
        # expected source retrieved now, lost later
        row(
            "q3",
            "Where is the refund policy?",
            "In the policy document [1].",
            expected_source="policy.docx",
            latency_ms=300.0,
        ),
        # wrong now, right later
        row("q4", "How long do refunds take in days?", "Refunds are paid [1].", expected_answer="14", latency_ms=400.0),
        # only in the old run
        row("q5", "Is there a trial?", "No trial is mentioned [1].", latency_ms=500.0),
    ]


def new_rows() -> list[dict]:
    other = [{"source": "guide.md", "page": None, "chunk_id": "g1", "score": 0.5, "text": "Install notes."}]
    return [
        row(
            "q1",
            "How long do refunds take?",
            "Refunds are paid within 14 days of the return [1].",
            expected_answer="14 days",
            expected_source="policy.docx",
            latency_ms=150.0,
        ),
        row(
            "q2",
            "What does premium cost?",
            "Not found in the knowledge base.",
            refused=True,
            citations=[],
            expected_answer="42 euros",
            latency_ms=250.0,
        ),
        row(
            "q3",
            "Where is the refund policy?",
            "In the policy document [1].",
            expected_source="policy.docx",
            retrieved=other,
            citations=[],
            latency_ms=350.0,
        ),
        row(
            "q4",
            "How long do refunds take in days?",
            "Refunds are paid within 14 days [1].",
            expected_answer="14",
            latency_ms=450.0,
        ),
        row("q6", "Who approves refunds?", "The manager [1].", latency_ms=550.0),
    ]


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    old, new = tmp_path / "reports" / "20250101-090000-faq", tmp_path / "reports" / "20250102-090000-faq"
    write_report(old_rows(), old, top_k=3, model="old.gguf", embedding_model="e", mode="hybrid")
    write_report(new_rows(), new, top_k=3, model="new.gguf", embedding_model="e", mode="hybrid")
    return old, new


def ids(items: list[dict]) -> list[str]:
    return [item["id"] for item in items]


def test_compare_reports_lists_each_known_change(runs):
    old, new = runs
    cmp = compare_reports(old, new)
    assert cmp["answers_changed"] == [
        {
            "id": "q1",
            "question": "How long do refunds take?",
            "old": "Refunds are paid within 14 days [1].",
            "new": "Refunds are paid within 14 days of the return [1].",
            "why": "evidence not recorded for both runs",
        },
        {
            "id": "q4",
            "question": "How long do refunds take in days?",
            "old": "Refunds are paid [1].",
            "new": "Refunds are paid within 14 days [1].",
            "why": "evidence not recorded for both runs",
        },
    ]
    assert cmp["newly_refused"] == [
        {
            "id": "q2",
            "question": "What does premium cost?",
            "old": "Premium costs 42 euros a month [1].",
            "new": "Not found in the knowledge base.",
            "why": "evidence not recorded for both runs",
        }
    ]
    assert cmp["newly_answered"] == [] and cmp["newly_failed"] == []
    assert ids(cmp["hit_lost"]) == ["q3"] and cmp["hit_gained"] == []
    assert ids(cmp["correct_gained"]) == ["q4"] and ids(cmp["correct_lost"]) == ["q2"]
    # q3 now answers without citing anything
    assert cmp["newly_flagged"] == [
        {"id": "q3", "question": "Where is the refund policy?", "flag_reason": "low support 0.00"}
    ]
    # q4's first answer gave no figure for "how long": flagged then, and no more
    assert cmp["flag_cleared"] == [
        {
            "id": "q4",
            "question": "How long do refunds take in days?",
            "flag_reason": "the question asks how much, and the answer states no figure",
        }
    ]
    assert cmp["only_old"] == [{"id": "q5", "question": "Is there a trial?"}]
    assert cmp["only_new"] == [{"id": "q6", "question": "Who approves refunds?"}]
    # accuracy: old q1 yes, q2 yes, q4 no = 2/3; new q1 yes, q2 no (refused), q4 yes = 2/3
    assert cmp["deltas"]["accuracy"] == {
        "old": pytest.approx(2 / 3),
        "new": pytest.approx(2 / 3),
        "delta": pytest.approx(0),
    }
    assert cmp["deltas"]["recall_at_k"] == {"old": 1.0, "new": 0.5, "delta": -0.5}
    assert cmp["deltas"]["latency_ms_p50"] == {"old": 300.0, "new": 350.0, "delta": 50.0}
    assert (cmp["old"]["model"], cmp["new"]["model"]) == ("old.gguf", "new.gguf")
    assert cmp["old"]["created_at"][:2] == "20" and cmp["new"]["dir"] == str(new)


def test_compare_falls_back_to_answers_csv_for_older_reports(runs):
    old, new = runs
    with_jsonl = compare_reports(old, new)
    (old / "rows.jsonl").unlink()
    summary = json.loads((old / "summary.json").read_text(encoding="utf-8"))
    del summary["accuracy"]  # reports written before accuracy existed
    (old / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    from_csv = compare_reports(old, new)
    assert [r["id"] for r in load_rows(old)] == ["q1", "q2", "q3", "q4", "q5"]
    for key in (
        "answers_changed",
        "newly_refused",
        "hit_lost",
        "correct_gained",
        "correct_lost",
        "newly_flagged",
        "only_old",
        "only_new",
    ):
        assert from_csv[key] == with_jsonl[key], key
    assert from_csv["deltas"]["accuracy"] == {"old": None, "new": pytest.approx(2 / 3), "delta": None}
    assert "| accuracy | n/a | 66.7% | n/a |" in comparison_markdown(from_csv)


def test_comparison_markdown_reads_as_a_change_list(runs):
    old, new = runs
    text = comparison_markdown(compare_reports(old, new))
    assert text.startswith("## Changes since 20")
    assert "| recall@k | 100.0% | 50.0% | -50.0 pt |" in text
    assert "| latency p50 | 300 ms | 350 ms | +50 ms |" in text
    assert "**Answers changed (2)**" in text
    assert (
        "- `q1` How long do refunds take?\n  - before: Refunds are paid within 14 days [1].\n"
        "  - now: Refunds are paid within 14 days of the return [1]." in text
    )
    assert "**Newly refused (1)**" in text and "**Expected source no longer retrieved (1)**" in text
    assert "**Now correct (1)**\n\n- `q4`" in text and "**No longer correct (1)**\n\n- `q2`" in text
    assert "**Newly flagged as unsupported (1)**\n\n- `q3` Where is the refund policy? (low support 0.00)" in text
    assert "**Questions no longer asked (1)**\n\n- `q5`" in text and "**New questions (1)**\n\n- `q6`" in text
    assert "Newly answered" not in text


def test_write_report_with_previous_shows_changes_first(runs, tmp_path):
    old, _ = runs
    out = tmp_path / "reports" / "20250103-090000-faq"
    rows = new_rows()
    rows[0]["answer"] = "Refunds take <b>two weeks</b> [1]."
    summary = write_report(rows, out, top_k=3, model="new.gguf", embedding_model="e", mode="hybrid", previous=old)
    on_disk = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["comparison"] == summary["comparison"]
    assert ids(on_disk["comparison"]["newly_refused"]) == ["q2"]
    assert on_disk["comparison"]["deltas"]["recall_at_k"]["delta"] == -0.5
    page = (out / "report.html").read_text(encoding="utf-8")
    changes = page.index("<h2>Changes since 20")
    assert changes < page.index('class="cards"') and changes < page.index('id="q-1"')
    assert "before: Refunds are paid within 14 days [1]." in page
    assert "now: Refunds take &lt;b&gt;two weeks&lt;/b&gt; [1]." in page and "<b>two weeks</b>" not in page
    assert "<h3>Newly refused (1)</h3>" in page and "<h3>Expected source no longer retrieved (1)</h3>" in page
    assert "<td>recall@k</td><td>100.0%</td><td>50.0%</td><td>-50.0 pt</td>" in page
    assert "model old.gguf → new.gguf" in page


def test_no_changes_section_without_previous(runs):
    _, new = runs
    page = (new / "report.html").read_text(encoding="utf-8")
    assert "Changes since" not in page
    assert "comparison" not in json.loads((new / "summary.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------ find_previous_report


def fake_report(root: Path, name: str, created_at: str | None, questions_file: str | None, qids: list[str]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    summary = {"created_at": created_at, "questions_file": questions_file}
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (folder / "rows.jsonl").write_text("".join(json.dumps({"id": q}) + "\n" for q in qids), encoding="utf-8")
    return folder


def test_find_previous_report_picks_the_newest_older_matching_one(tmp_path):
    root = tmp_path / "reports"
    a = fake_report(root, "20250101-090000-faq", "2025-01-01T09:00:00+00:00", "sets/faq.csv", ["q1", "q2"])
    b = fake_report(root, "20250102-090000-faq", "2025-01-02T09:00:00+00:00", "/elsewhere/faq.csv", ["q1", "q9"])
    other = fake_report(root, "20250103-090000-hr", "2025-01-03T09:00:00+00:00", "sets/hr.csv", ["h1"])
    current = root / "20250104-090000-faq"  # being written: no summary yet
    assert find_previous_report(root, current, "sets/faq.csv", ["q1", "q2"]) == b  # same file name, newest
    assert find_previous_report(root, current, "sets/other-name.csv", ["q1", "q2"]) == a  # same question ids
    assert find_previous_report(root, current, "sets/hr.csv", ["h1"]) == other
    assert find_previous_report(root, current, "sets/new.csv", ["z1"]) is None
    # a finished current report: only reports created before it count
    fake_report(root, current.name, "2025-01-01T12:00:00+00:00", "sets/faq.csv", ["q1", "q2"])
    assert find_previous_report(root, current, "sets/faq.csv", ["q1", "q2"]) == a
    assert find_previous_report(root, a, "sets/faq.csv", ["q1", "q2"]) is None  # nothing older than the first
    assert find_previous_report(tmp_path / "missing", current, "sets/faq.csv", []) is None


def test_a_report_is_compared_only_with_reports_made_for_the_same_readers(tmp_path):
    from tasks.answer.options import RetrievalOptions

    root = tmp_path / "reports"
    staff, hr = RetrievalOptions(for_groups=("staff",)).audience(), RetrievalOptions(for_groups=("hr",)).audience()
    before = fake_report(root, "20250101-090000-faq", "2025-01-01T09:00:00+00:00", "faq.csv", ["q1"])  # no audience
    first = fake_report(root, "20250102-090000-faq", "2025-01-02T09:00:00+00:00", "faq.csv", ["q1"])
    for folder, audience in (
        (first, staff),
        (fake_report(root, "20250103-090000-faq", "2025-01-03T09:00:00+00:00", "faq.csv", ["q1"]), hr),
    ):
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        (folder / "summary.json").write_text(json.dumps({**summary, "audience": audience}), encoding="utf-8")
    current = root / "20250104-090000-faq"
    assert find_previous_report(root, current, "faq.csv", ["q1"], staff) == first  # not the newer hr report
    assert find_previous_report(root, current, "faq.csv", ["q1"], RetrievalOptions().audience()) is None
    # one made before readers were kept was made from every document: an administrator's run compares with it
    assert (
        find_previous_report(root, current, "faq.csv", ["q1"], RetrievalOptions(all_documents=True).audience())
        == before
    )


def test_find_previous_report_falls_back_to_folder_names(tmp_path):
    root = tmp_path / "reports"
    first = fake_report(root, "run-a", None, None, ["q1"])
    fake_report(root, "run-c", None, None, ["q1"])
    current = fake_report(root, "run-b", None, None, ["q1"])
    assert find_previous_report(root, current, "faq.csv", ["q1"]) == first
    assert find_previous_report(root, current, "faq.csv", ["q2"]) is None


def evidence_row(answer: str, evidence: list[list[str]]) -> dict:
    return {"id": "q1", "question": "How many people?", "answer": answer, "refused": False, "evidence": evidence}


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (
            [["a1", "h1", "company/about.txt"]],
            [["a2", "h2", "company/about.txt"]],
            "evidence changed: company/about.txt (edited)",
        ),
        (
            [["a1", "h1", "company/about.txt"]],
            [["a1", "h1", "company/about.txt"], ["b1", "h", "hr/leave.txt"]],
            "evidence changed: hr/leave.txt (entered)",
        ),
        (
            [["a1", "h1", "company/about.txt"], ["b1", "h", "hr/leave.txt"]],
            [["b1", "h", "hr/leave.txt"]],
            "evidence changed: company/about.txt (left)",
        ),
        (
            [["a1", "h1", "company/about.txt"]],
            [["a1", "h1", "company/about.txt"]],
            "same evidence: the model, prompt or settings differ",
        ),
    ],
)
def test_a_changed_answer_says_which_documents_changed_its_evidence(tmp_path, old, new, why):
    old_dir = tmp_path / "old"
    write_report(
        [evidence_row("412 people [1].", old)],
        old_dir,
        top_k=3,
        model="m",
        embedding_model="e",
        mode="hybrid",
        extra={"answer_setup": "s1"},
    )
    summary = write_report(
        [evidence_row("512 people [1].", new)],
        tmp_path / "new",
        top_k=3,
        model="m",
        embedding_model="e",
        mode="hybrid",
        previous=old_dir,
        extra={"answer_setup": "s2"},
    )
    assert [c["why"] for c in summary["comparison"]["answers_changed"]] == [why]
    assert f"why: {why}" in comparison_markdown(summary["comparison"])
    assert html.escape(why) in (tmp_path / "new" / "report.html").read_text(encoding="utf-8")
    changes = pd.read_excel(tmp_path / "new" / "answers.xlsx", sheet_name="Changes", dtype=str)
    assert list(changes["why"]) == [why] and list(changes["change"]) == ["Answers changed"]


def test_same_evidence_and_setup_on_a_sampling_server_says_so(tmp_path):
    evidence = [["a1", "h1", "company/about.txt"]]
    old_dir = tmp_path / "old"
    write_report(
        [evidence_row("412 people [1].", evidence)],
        old_dir,
        top_k=3,
        model="m",
        embedding_model="e",
        mode="hybrid",
        extra={"answer_setup": "s"},
    )
    summary = write_report(
        [evidence_row("About 412 [1].", evidence)],
        tmp_path / "new",
        top_k=3,
        model="m",
        embedding_model="e",
        mode="hybrid",
        previous=old_dir,
        extra={"answer_setup": "s", "answers_deterministic": False},
    )
    assert (
        summary["comparison"]["answers_changed"][0]["why"]
        == "same evidence and setup: the backend is not deterministic"
    )
