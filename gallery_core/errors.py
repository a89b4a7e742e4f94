"""The product's error for bad input, as opposed to a bug.

``UsageError`` means the user gave something wrong (a file, a column, a flag, a setting): its message says
what and where, and the CLI prints it as one line and exits 2. Any other exception is a bug in
gallery-core, and the CLI lets its traceback through. It subclasses ``ValueError`` so code that catches
a ``ValueError`` from a bad value keeps working.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user; the message says what is wrong and where."""


class ConfigError(UsageError):
    """A setting out of range or unknown (a flag, a config file key, a section name)."""
