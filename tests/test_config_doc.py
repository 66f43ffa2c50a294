"""The README's configuration table is the one generated from the settings."""

from pathlib import Path

from csv_merger.settings import Settings
from deployments.config_table import config_table, env_name

REPO = Path(__file__).resolve().parent.parent


def test_readme_holds_the_generated_configuration_table():
    assert config_table() in (REPO / "README.md").read_text(encoding="utf-8"), \
        "README configuration table is stale: paste `python -m deployments.config_table`"


def test_every_setting_is_documented_under_its_environment_name(monkeypatch):
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"
    field = Settings.model_fields["worker_count"]
    monkeypatch.setenv(env_name("worker_count", field), "5")
    monkeypatch.setenv(env_name("chunk_ttl_s", Settings.model_fields["chunk_ttl_s"]), "60")
    settings = Settings()
    assert (settings.worker_count, settings.chunk_ttl_s) == (5, 60)  # the names in the table are the ones read
