"""The README's configuration table, generated from ``csv_merger.settings.Settings``.

``python -m deployments.config_table`` prints it (Markdown); a test checks
that the README holds exactly this table, so the two cannot drift apart.
"""

from __future__ import annotations

from pydantic import AliasChoices

from csv_merger.settings import Settings


def env_name(name: str, field) -> str:
    """The environment variable of a settings field: its plain alias (``REDIS_URL``) or ``CSV_MERGER_<NAME>``."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"CSV_MERGER_{name.upper()}"


def _default(field) -> str:
    value = field.default
    return "unset" if value is None else f"`{value}`"


def config_table() -> str:
    """Markdown table: variable, default, meaning, one row per settings field (in declaration order)."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{env_name(name, field)}` | {_default(field)} | {field.description} |")
    rows.append("| `PREFECT_API_URL` | unset | Prefect server or Cloud workspace API; unset: an ephemeral API "
                "per command (no server needed). |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(config_table())
