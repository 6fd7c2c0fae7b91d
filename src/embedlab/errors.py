"""Errors that reach users: each names the config key, file or line at fault."""

from __future__ import annotations

from enum import StrEnum


class EmbedlabError(Exception):
    """Base class of the errors embedlab raises on purpose."""


class ConfigError(EmbedlabError, ValueError):
    """One or more problems in a composed config, each naming the key and the fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid config ({len(self.problems)} problem(s)):\n{lines}")


class DataError(EmbedlabError, ValueError):
    """Bad input data: names the file and, where there is one, the line."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class OnBadRows(StrEnum):
    """What a reader does with a bad row of a data or vector file (``on_bad_rows``)."""

    error = "error"  # stop with the file:line and the cause
    skip = "skip"  # drop it, count it, report the count
