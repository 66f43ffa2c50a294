"""The Typer application every sub-command module registers on."""

import shlex
import sys
from pathlib import Path

import typer

from csv_merger.cli.stopping import loaded
from csv_merger.errors import ConfigError, InputError, RedisUnavailableError
from csv_merger.redis_check import masked, ping_redis

app = typer.Typer(
    name="csv-merger",
    help="Merge lead-list CSVs and deliver them to a webhook at the target's rate.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: wraps at any width, never cuts an option name off
)


invoked_with: list[str] = []  # this invocation's arguments (set by csv_merger.cli.main), for resume hints


def resume_command(job_id: str) -> str:
    """This invocation's command line with ``--job-id JOB_ID`` (replacing one given), shell-quoted;
    a password in a ``--redis-url`` is shown as ``***`` (never printed)."""
    out, previous = [], ""
    for arg in invoked_with:
        if previous == "--job-id" or arg == "--job-id" or arg.startswith("--job-id="):
            previous = arg
            continue
        out.append(masked(arg) if previous == "--redis-url" or arg.startswith("--redis-url=") else arg)
        previous = arg
    return shlex.join(["csv-merger", *out, "--job-id", job_id])


def announce_job(job_id: str) -> None:
    """Print the job id on stderr as delivery starts, so an interrupted job can be resumed."""
    print(f"csv-merger: job id {job_id} (run again with --job-id {job_id} to resume)", file=sys.stderr, flush=True)


DELIVERING_COMMANDS = ("run", "deliver", "redeliver", "demo")
"""Commands that keep ``main``'s Ctrl-C handler (``stopping.StopWhileLoading``: one line, exit 130) until their
own ``GracefulStop`` takes over as delivery starts. The others get Python's back as they start: uvicorn
(``web``, ``sink``) handles Ctrl-C itself, and typer turns the rest's KeyboardInterrupt into exit 130."""


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Merge lead-list CSVs and deliver them to a webhook at the target's rate."""
    if ctx.invoked_subcommand not in DELIVERING_COMMANDS:
        loaded()


def check_output_paths(**paths: Path | None) -> None:
    """Refuse, before any work (rows may be sent before an output is written), an output file
    (``option=path``) that is a directory, a link, a device or a pipe (it is written as a new file
    and renamed over the old one: that would replace it), or whose folder does not exist or cannot
    be written to (a file is created there and removed). Raises ConfigError naming the option."""
    for option, path in paths.items():
        if path is None:
            continue
        flag = "--" + option.replace("_", "-")
        if path.is_dir():
            raise ConfigError(f"{flag} {path}: is a directory, expected a file name")
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise ConfigError(f"{flag} {path}: is a link, device or pipe, expected a regular file name "
                              "(it would be replaced by the output)")
        if not path.parent.is_dir():
            raise ConfigError(f"{flag} {path}: directory {path.parent} does not exist")
        _check_writable(flag, path, path.parent)


def check_output_dir(option: str, path: Path | None) -> None:
    """Refuse, before any work, a folder for outputs (``--option``) that is not a folder, or whose
    nearest existing folder cannot be written to (it is created later). Raises ConfigError."""
    if path is None:
        return
    flag, existing = "--" + option.replace("_", "-"), path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is not a directory")
    _check_writable(flag, path, existing)


def _check_writable(flag: str, path: Path, folder: Path) -> None:
    """Create and remove a file in ``folder``; ConfigError naming ``flag`` and the reason if that fails."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".csv-merger-check-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot write in {folder} ({exc.strerror or exc})") from None


def check_suppression_list(path: str | Path | None) -> None:
    """Refuse, before any work (the job id is printed only once work starts), a ``--suppress`` file
    that is missing, a directory, a pipe or unreadable, or that holds no e-mail address or domain.
    Raises InputError (exit 1) naming ``--suppress`` and the file."""
    if path is None:
        return
    from tasks.deliver.new_leads import read_suppression
    from tasks.merge.sources import check_readable_file

    try:
        check_readable_file(path)  # first: a pipe is never opened (read here, it would be empty for the job)
        read_suppression(path)
    except InputError as exc:
        raise InputError(f"--suppress {path}", exc.reason) from None


def require_redis(url: str | None, given_as: str) -> None:
    """Refuse, before any work, a Redis (``url``, from option or variable ``given_as``) that does not answer
    PING: the job's limiter, ledger and lead index need it, and would fail only once the job started.
    Raises RedisUnavailableError (exit 4), ConfigError for a URL that is no Redis URL; never shows a password."""
    if not url:
        return
    try:
        ping_redis(url)
    except RedisUnavailableError as exc:
        raise RedisUnavailableError(f"Redis is needed ({given_as}) and unavailable: {exc}") from None


# Options that deliver and run share, declared once.
def option_or_setting(value, default):
    """The option's value when given (even 0, which validation then refuses), else the setting."""
    return default if value is None else value


WEBHOOK_URLS_HELP = ("Target URL (e.g. a Clay webhook source). Give it again for more destinations of the same "
                     "workspace: when one is full (its lifetime ceiling) delivery rolls over to the next.")
WEBHOOK_URLS = typer.Option(..., "--webhook-url", help=WEBHOOK_URLS_HELP)
FORCE_RESEND = typer.Option(False, "--force-resend",
                            help="Resume even though Redis lost the job's ledger (every row is sent again).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress on stderr (warnings still show).")
RESEND = typer.Option(False, "--resend", help="Also send leads the destination already has.")
SUPPRESS = typer.Option(None, "--suppress", help="Do-not-contact list (e-mails, domains): never sent.")
