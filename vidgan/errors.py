"""Errors with a one-line, user-facing message and the exit code the CLI maps them to.

Exit codes (documented in README and `vidgan --help`):
  0  every input processed
  1  some inputs failed (the others completed)
  2  usage error (bad option, nothing to do)
  3  wrong passcode or damaged vault
  4  audit found a leak
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PASSCODE = 3
EXIT_LEAK = 4


class VidganError(Exception):
    """Base class: `str(err)` is a complete one-line message for the user."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)


class MediaError(VidganError):
    """An input cannot be read (missing, empty, not a video, corrupt, undecodable)."""


class OutputError(VidganError):
    """An output cannot be written (folder missing or read-only, same as input, encoder refused)."""


class UsageError(VidganError):
    exit_code = EXIT_USAGE


class Cancelled(VidganError):
    """The job was cancelled by the caller (GUI Cancel, Ctrl-C); nothing was written."""
