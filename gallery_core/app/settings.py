"""The app's deployment settings (without Streamlit): read-only mode for a public viewer.

Where they come from, first found wins:

1. ``GALLERY_CORE_READ_ONLY`` (``1``/``0``, ``yes``/``no``, ``true``/``false``): what ``gallery-core serve
   --read-only`` and ``make serve READ_ONLY=1`` set;
2. a TOML file, ``$GALLERY_CORE_APP_CONFIG`` or else ``.streamlit/gallery-core.toml`` in the folder the server
   starts in (beside Streamlit's own ``config.toml`` and ``secrets.toml``)::

       read_only = true

Read-only hides every action that writes to disk (audit decisions, writing a selection as a catalogue); what
only reads (the map, retrieval, downloads to the browser) stays. Sign-in is Streamlit's own (``st.login``,
``[auth]`` in ``.streamlit/secrets.toml``; see the README's "Working as a team") and needs no setting here.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gallery_core.errors import ConfigError

READ_ONLY_ENV = "GALLERY_CORE_READ_ONLY"
CONFIG_ENV = "GALLERY_CORE_APP_CONFIG"
DEFAULT_CONFIG = Path(".streamlit") / "gallery-core.toml"
_TRUE, _FALSE = ("1", "yes", "true", "on"), ("0", "no", "false", "off", "")
KEYS = ("read_only",)


@dataclass(frozen=True)
class AppSettings:
    read_only: bool = False


def load_app_settings(environ: dict[str, str] | None = None, cwd: Path | None = None) -> AppSettings:
    """The settings from the environment and the settings file (``ConfigError`` naming the file or variable
    for a value that is not one)."""
    environ = dict(os.environ) if environ is None else environ
    from_file = _read_file(Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else (cwd or Path.cwd()) / DEFAULT_CONFIG,
                           required=bool(environ.get(CONFIG_ENV)))
    read_only = from_file.get("read_only", False)
    if READ_ONLY_ENV in environ:
        value = environ[READ_ONLY_ENV].strip().lower()
        if value not in _TRUE + _FALSE:
            raise ConfigError(f"{READ_ONLY_ENV}={environ[READ_ONLY_ENV]!r}: expected 1 or 0 (yes/no, true/false)")
        read_only = value in _TRUE
    return AppSettings(read_only=read_only)


def _read_file(path: Path, required: bool) -> dict[str, bool]:
    if not path.is_file():
        if required:
            raise ConfigError(f"{path}: app settings file not found (named by {CONFIG_ENV})")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the app settings: {err}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown settings {unknown}; the settings are {list(KEYS)}")
    if "read_only" in data and not isinstance(data["read_only"], bool):
        raise ConfigError(f"{path}: read_only must be true or false, got {data['read_only']!r}")
    return data
