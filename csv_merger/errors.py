"""One shallow exception tree for the whole tool.

``CsvMergerError`` is the base; the CLI turns every subclass into one clear
line on stderr and the subclass's ``exit_code``. Expected conditions raise
these, never bare exceptions, so no traceback reaches a user.
"""

from __future__ import annotations


class CsvMergerError(Exception):
    """Base of every error this tool raises on purpose. Exit code 1."""

    exit_code = 1


class InputError(CsvMergerError):
    """A file (or a row or field of it) cannot be used.

    Attributes: ``path`` (str), ``line`` (1-based physical line or None),
    ``field`` (column name or None), ``reason`` (str). The message always
    names the file, then the line or field when known, then the reason.
    """

    exit_code = 1

    def __init__(self, path: str, reason: str, *, line: int | None = None, field: str | None = None):
        self.path, self.reason, self.line, self.field = str(path), reason, line, field
        where = self.path
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")


class ConfigError(CsvMergerError):
    """A setting, argument or mapping file is invalid. Exit code 2."""

    exit_code = 2


class UnsafeTargetError(CsvMergerError):
    """A webhook URL is not http(s) or points at a loopback, private,
    link-local or cloud-metadata address (SSRF guard). Exit code 2."""

    exit_code = 2


class RedisUnavailableError(CsvMergerError):
    """Redis was asked for (``--redis-url`` / ``REDIS_URL``) but does not
    answer, or stopped answering mid-run. Exit code 4."""

    exit_code = 4


class DeliveryError(CsvMergerError):
    """Delivery could not go on (e.g. the target is unreachable for longer
    than the retry budget). Exit code 5."""

    exit_code = 5


class DeliveryIncomplete(CsvMergerError):
    """Delivery ended with some rows in the dead-letter file. Exit code 3."""

    exit_code = 3
