"""Names of Volumes, Dicts, Queues and deployed apps: checked early, so a bad name never becomes
a surprising path or key (no `/`, no `..`, nothing empty)."""

from __future__ import annotations

import re

from nbfan.exception import InvalidError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: object, what: str) -> str:
    """Return `name` if it is a valid object name, else raise InvalidError saying what is allowed."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InvalidError(
            f"invalid {what} name {name!r}: use 1-64 letters, digits, '.', '-' or '_', starting with a letter or "
            f"digit (no '/', no '..', not empty)"
        )
    return name
