"""Traced dependencies: what a command read, found by watching it run (``--trace``)."""

from __future__ import annotations

__all__ = ["key_fields"]


def key_fields(globs: list[str]) -> list[str]:
    """Describe ``--trace`` and its ``--trace-ignore`` globs as fields of a command's key.

    What a traced hit checks differs from an untraced one's: another key. The fields read as a
    group of :mod:`jobstamps.explain` (``trace:N`` and N words).
    """
    words = ["--trace", *(f"--trace-ignore={glob}" for glob in globs)]
    return [f"trace:{len(words)}", *words]
