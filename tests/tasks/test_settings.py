"""Settings: each option declared once, the override rules, the API-key indirection, the Prefect home."""

from __future__ import annotations

import pytest

from tasks.settings import CONFIG_FIELDS, Settings, load_settings, prefect_env

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("KBFLOW_") or key in ("PREFECT_HOME", "PREFECT_API_URL", "OPENAI_API_KEY"):
            monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("name", sorted(CONFIG_FIELDS))
def test_a_setting_backed_by_a_task_config_has_that_configs_default_bounds_and_description(name):
    model, field = CONFIG_FIELDS[name]
    ours, theirs = Settings.model_fields[name], model.model_fields[field]
    assert ours.get_default(call_default_factory=True) == theirs.get_default(call_default_factory=True)
    assert ours.metadata == theirs.metadata and ours.description == theirs.description


def test_no_setting_repeats_a_task_config_field_without_being_declared_from_it():
    # A setting named like a config field (top_k, n_ctx, ...) must come from CONFIG_FIELDS, not be written again.
    from tasks.answer.backends import LLMConfig
    from tasks.answer.options import RetrievalOptions
    from tasks.embed.embedder import EmbedderConfig
    from tasks.ingest.split import SplitOptions

    for model in (LLMConfig, RetrievalOptions, EmbedderConfig, SplitOptions):
        for field in model.model_fields:
            if field in Settings.model_fields:
                assert field in CONFIG_FIELDS, f"{field} is declared in Settings and in {model.__name__}"


def test_the_task_configs_built_from_default_settings_equal_their_own_defaults():
    from tasks.answer.backends import LLMConfig
    from tasks.answer.options import RetrievalOptions

    cfg = Settings()
    llm = cfg.llm_config()
    assert (llm.model, llm.threads, llm.n_ctx) == (LLMConfig().model, LLMConfig().threads, LLMConfig().n_ctx)
    assert cfg.retrieval_options() == RetrievalOptions()


def test_environment_sets_a_value_and_explicit_overrides_win_except_none(monkeypatch):
    monkeypatch.setenv("KBFLOW_TOP_K", "3")
    monkeypatch.setenv("KBFLOW_MODE", "keyword")
    cfg = load_settings(top_k=None, mode="dense")
    assert cfg.top_k == 3 and cfg.mode == "dense"


def test_a_value_out_of_its_declared_bounds_is_refused(monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("KBFLOW_TOP_K", "0")
    with pytest.raises(ValidationError, match="top_k"):
        load_settings()


def test_the_api_key_is_read_from_the_variable_named_by_api_key_env(monkeypatch):
    monkeypatch.setenv("MY_GATEWAY_KEY", "sk-test")
    monkeypatch.setenv("KBFLOW_OPENAI_API_KEY_ENV", "MY_GATEWAY_KEY")
    assert load_settings().openai_api_key.get_secret_value() == "sk-test"
    monkeypatch.setenv("KBFLOW_OPENAI_API_KEY", "sk-direct")
    assert load_settings().openai_api_key.get_secret_value() == "sk-direct"  # the direct setting wins


def test_prefect_env_without_a_server_uses_the_stores_home(tmp_path):
    env = prefect_env(tmp_path / "store")
    assert env["PREFECT_HOME"] == str((tmp_path / "store" / "prefect" / "home").resolve())
    assert "PREFECT_API_URL" not in env and "KBFLOW_PREFECT_SERVER_DOWN" not in env


def test_prefect_env_says_when_the_recorded_server_does_not_answer(tmp_path):
    (tmp_path / "prefect").mkdir()
    (tmp_path / "prefect" / "api_url").write_text("http://127.0.0.1:9/api")
    env = prefect_env(tmp_path)
    assert "PREFECT_API_URL" not in env and env["KBFLOW_PREFECT_SERVER_DOWN"].startswith("http://127.0.0.1:9/api")


def test_prefect_env_leaves_a_users_own_prefect_setting_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert prefect_env(tmp_path) == {}


def test_two_runs_ending_in_the_same_second_get_two_report_folders(tmp_path):
    """Two jobs of one question set that end together never write into one folder (one report would be lost)."""
    from tasks.settings import timestamped_dir

    made = [timestamped_dir(tmp_path / "reports", "questions set") for _ in range(3)]
    assert all(p.is_dir() and p.parent == tmp_path / "reports" for p in made)
    if made[0].name[:15] == made[2].name[:15]:  # the same second (the stamp is YYYYmmdd-HHMMSS)
        assert [p.name[16:] for p in made] == ["questions-set", "questions-set-2", "questions-set-3"]
    assert len(set(made)) == 3
