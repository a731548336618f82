"""Errors a user can fix, reported as one line (never a traceback).

Every message names where the problem is (file and field path, or the request) and what was expected. The CLI
prints `qkdbed: <message>` and exits with code 2 for these.
"""

from __future__ import annotations


class QkdbedError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class ValidationError(QkdbedError):
    """A recipe, topology or request that does not have the expected shape.

    `where` is a file name (or "recipe", "request"), `path` a dotted field path such as `links[3].distance_km`.
    """

    def __init__(self, where: str, path: str, expected: str, got: object = None):
        self.where, self.path, self.expected, self.got = where, path, expected, got
        msg = f"{where}: {path}: expected {expected}" if path else f"{where}: expected {expected}"
        if got is not None:
            shown = repr(got)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            msg += f", got {shown}"
        super().__init__(msg)


class NotYetError(QkdbedError):
    """A capability that is planned but not built yet: said plainly instead of faking a result."""

    def __init__(self, what: str, issue: int | None = None):
        tail = f" (tracked in issue {issue})" if issue else ""
        super().__init__(f"not yet: {what}{tail}")
