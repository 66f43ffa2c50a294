"""``csv-merger mappings save|list|show|delete``: mapping presets, one per
tool's export, applied by themselves to later files with the same headers
(``tasks.merge.headers.presets``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from csv_merger.cli.app import app

mappings_app = typer.Typer(help="Save, list, show and delete mapping presets.", no_args_is_help=True)
app.add_typer(mappings_app, name="mappings")

_DIR = typer.Option("--dir", help="Preset folder (default: CSV_MERGER_MAPPINGS_DIR, else <data_dir>/mappings).")


@mappings_app.command("save")
def save(
    name: Annotated[str, typer.Argument(help="Preset name, e.g. apollo.")],
    file: Annotated[Path, typer.Argument(help="An export of the tool (CSV or spreadsheet): its headers are saved.")],
    mapping: Annotated[Optional[Path], typer.Option(
        "--mapping", help="YAML/JSON {source header: canonical field | ignore | keep}; without it the "
                          "mapping as decided now for FILE is frozen.")] = None,
    table_type: Annotated[str, typer.Option("--type", help="people or company.")] = "people",
    directory: Annotated[Optional[Path], _DIR] = None,
) -> None:
    """Save a mapping for files with FILE's headers."""
    from csv_merger.errors import ConfigError
    from tasks.merge import load_mapping_file, map_headers, open_source
    from tasks.merge.headers.presets import PresetStore, frozen_mapping

    if table_type not in ("people", "company"):
        raise ConfigError(f"--type {table_type!r}: expected 'people' or 'company'")
    source = open_source(file)
    if not source.header:
        raise ConfigError(f"{file}: no header row to save a mapping for")
    if mapping is not None:
        overrides = load_mapping_file(mapping)
    else:
        decided, _ = map_headers(source.header, table_type, sample=source.sample())  # type: ignore[arg-type]
        overrides = frozen_mapping(decided)
    store = PresetStore(directory)
    preset = store.save(name, source.header, overrides, table_type)
    print(f"saved mapping preset {preset.name!r} ({len(preset.mapping)} entries, fingerprint "
          f"{preset.fingerprint}) in {store.root}")


@mappings_app.command("list")
def list_presets(directory: Annotated[Optional[Path], _DIR] = None) -> None:
    """List the saved presets: name, table type, columns, fingerprint."""
    from tasks.merge.headers.presets import PresetStore

    presets = PresetStore(directory).all()
    for p in presets:
        print(f"{p.name}\t{p.table_type or '-'}\t{len(p.headers)} columns\t{p.fingerprint}")
    if not presets:
        print("no mapping presets saved")


@mappings_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Preset name.")],
         directory: Annotated[Optional[Path], _DIR] = None) -> None:
    """Print a preset's mapping as YAML (usable as a --mapping file)."""
    import yaml

    from tasks.merge.headers.presets import PresetStore

    print(yaml.safe_dump(PresetStore(directory).get(name).mapping, sort_keys=False, allow_unicode=True), end="")


@mappings_app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="Preset name.")],
           directory: Annotated[Optional[Path], _DIR] = None) -> None:
    """Delete a preset."""
    from tasks.merge.headers.presets import PresetStore

    PresetStore(directory).delete(name)
    print(f"deleted mapping preset {name!r}")
