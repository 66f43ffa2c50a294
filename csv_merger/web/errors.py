"""The one error the web API raises on purpose."""

from __future__ import annotations

OWN_WORDS = "csv_merger"
"""Type of a request-validation error (pydantic_core.PydanticCustomError) whose message is already the
tool's own sentence, naming the field as the CLI does ("rate 1e-09 requests/s is below the floor ..."):
the API shows it as is, where pydantic's own messages get the field's name in front."""


class ApiError(Exception):
    """An HTTP error with a JSON body ``{"error", "file"?, "field"?, "left_out"?}``.

    ``status``: HTTP status code; ``message`` names the file or field and the
    reason; ``file`` / ``field`` let the page highlight what is wrong;
    ``left_out``: ``[{file, error}]``, one per file of a batch that was refused.
    """

    def __init__(self, status: int, message: str, *, file: str | None = None, field: str | None = None,
                 left_out: list[dict] | None = None):
        self.status, self.message, self.file, self.field = status, message, file, field
        self.left_out = left_out
        super().__init__(message)

    def body(self) -> dict:
        body = {"error": self.message}
        if self.file is not None:
            body["file"] = self.file
        if self.field is not None:
            body["field"] = self.field
        if self.left_out is not None:
            body["left_out"] = self.left_out
        return body
