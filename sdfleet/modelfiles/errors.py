"""The one error raised by model-file inspection and conversion."""

from __future__ import annotations


class ModelFileError(Exception):
    """A file is not an acceptable model file; `code` is stable, `message` says what was wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
