"""Exceptions that the CLI turns into one clear line, and option names in their messages.

Every error that signrm raises on purpose derives from :class:`SignrmError`; each also derives
from the built-in class that callers would naturally catch (``ValueError``, ``RuntimeError``,
``OSError``). ``signrm`` prints any of them as one ``error: ...`` line (``--debug`` shows the
traceback); other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

__all__ = [
    "SignrmError",
    "UserError",
    "EncoderError",
    "ResourceError",
    "option_hint",
    "cli_option_style",
]


class SignrmError(Exception):
    """Base class of signrm's own errors."""


class UserError(SignrmError, ValueError):
    """Bad input from the user: a file, a config key, an option. The message says what to fix."""


class EncoderError(SignrmError, RuntimeError):
    """An encoder or its embedding cache cannot give valid features (not a bug in signrm): a cache
    holding vectors of another size, a model that produces non-finite values."""


class ResourceError(SignrmError, OSError):
    """Something signrm needs is unavailable: a hub model that is neither stored locally nor
    reachable, an embedding cache directory that cannot be created."""


_CLI_STYLE: contextvars.ContextVar[bool] = contextvars.ContextVar("signrm_cli_style", default=False)


@contextlib.contextmanager
def cli_option_style() -> Iterator[None]:
    """Inside this block, :func:`option_hint` names command-line flags (``--on-invalid drop``)
    instead of Python keyword arguments (``on_invalid='drop'``). ``signrm`` wraps every
    sub-command in it."""
    token = _CLI_STYLE.set(True)
    try:
        yield
    finally:
        _CLI_STYLE.reset(token)


def option_hint(name: str, *values: Any) -> str:
    """How the user sets option ``name`` to one of ``values``, worded for the caller.

    >>> option_hint("on_duplicate", "warn", "drop")
    "on_duplicate='warn' or 'drop'"
    >>> with cli_option_style():
    ...     option_hint("on_duplicate", "warn", "drop")
    '--on-duplicate warn|drop'
    """
    if _CLI_STYLE.get():
        flag = "--" + name.replace("_", "-")
        return flag if not values else f"{flag} {'|'.join(str(v) for v in values)}"
    if not values:
        return f"{name}="
    shown = [repr(v) for v in values]
    if len(shown) == 1:
        return f"{name}={shown[0]}"
    return f"{name}={', '.join(shown[:-1])} or {shown[-1]}"
