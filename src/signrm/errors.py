"""Exceptions that the CLI turns into one clear line."""


class SignrmError(Exception):
    """Base class of signrm's own errors."""


class UserError(SignrmError, ValueError):
    """Bad input from the user: a file, a config key, an option. The message says what to fix."""
