"""The answering thread count: measured once per model and machine on the real bundled model, then reused."""

from __future__ import annotations

import json

import pytest

from tasks.answer import threads as threads_mod
from tasks.answer.backends import LlamaCppBackend
from tasks.answer.models import bundled_gguf


@pytest.mark.unit
@pytest.mark.parametrize(("cpus", "expected"), [(1, [1]), (2, [1, 2]), (4, [1, 2, 3, 4]), (16, [8, 15, 16])])
def test_the_candidates_are_every_count_on_a_small_machine_and_three_on_a_large_one(cpus, expected):
    assert threads_mod.candidates(cpus) == expected


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "threads.json"
    monkeypatch.setattr(threads_mod, "cache_file", lambda: path)
    return path


def test_the_first_load_measures_every_candidate_and_keeps_the_fastest(cache, whole_machine):
    model = str(bundled_gguf())
    assert threads_mod.cpu_count() == len(whole_machine)  # measured for the machine, not a test worker's share
    backend = LlamaCppBackend(model, 1024, 0)
    entry = json.loads(cache.read_text())[threads_mod.machine_key(model)]
    rates = {int(n): r for n, r in entry["prefill_tok_s"].items()}
    assert sorted(rates) == threads_mod.candidates(threads_mod.cpu_count()) and min(rates.values()) > 0
    assert backend.threads == entry["threads"] == max(rates, key=rates.get)
    # The model still answers after the measurement (its probe left nothing in the context).
    assert backend.count_tokens([{"role": "user", "content": "hello"}]) > 0


def test_a_cached_measurement_is_reused_and_a_set_count_is_kept(cache):
    model = str(bundled_gguf())
    cache.write_text(json.dumps({threads_mod.machine_key(model): {"threads": 1, "prefill_tok_s": {"1": 9.0}}}))
    assert LlamaCppBackend(model, 1024, 0).threads == 1
    assert LlamaCppBackend(model, 1024, 2).threads == 2
    assert json.loads(cache.read_text())[threads_mod.machine_key(model)]["prefill_tok_s"] == {"1": 9.0}
