"""Named datasets from a TOML file, dataset URIs, and secret handling.

The config file is ``$CONNECTOMIX_CONFIG`` if set, else ``config.toml`` in
the user config directory (``connectomix config-path`` prints it)::

    # Each [datasets.<name>] needs a uri; every other key is a backend option.
    [datasets.hemibrain]
    uri = "neuprint://neuprint.janelia.org/hemibrain:v1.2.1"

    [datasets.flywire]
    uri = "cave://flywire_fafb_public"
    materialization = 783

Analysis code then calls ``connectomix.open("hemibrain")`` and swaps datasets
by changing the name. Tokens are best left to the environment variables each
backend documents; a ``token`` key is accepted but is never printed.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .backend import ParsedURI
from .errors import ConfigError, InvalidURIError

__all__ = ["Secret", "SECRET_OPTION_NAMES", "config_path", "load_config", "parse_uri", "DatasetConfig"]

#: Option names whose values are wrapped in :class:`Secret` wherever they come from.
SECRET_OPTION_NAMES = frozenset({"token", "auth_token", "api_token", "password"})


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or tracebacks.

    Examples
    --------
    >>> s = Secret("abc123")
    >>> s
    Secret('***')
    >>> f"{s}"
    '***'
    >>> s.reveal()
    'abc123'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret):
        object.__setattr__(self, "_value", value.reveal() if isinstance(value, Secret) else str(value))

    def reveal(self) -> str:
        """The actual value, for an ``Authorization`` header and nothing else."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self):  # pickling would write the token to disk (caches); refuse
        raise TypeError("connectomix.Secret cannot be pickled")


def protect_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap secret-looking option values in :class:`Secret`."""
    return {k: (Secret(v) if k in SECRET_OPTION_NAMES and v is not None and not isinstance(v, Secret) else v)
            for k, v in options.items()}


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")


def parse_uri(uri: str) -> ParsedURI:
    """Split a dataset URI into scheme, location and options.

    Examples
    --------
    >>> p = parse_uri("cave://flywire_fafb_public?materialization=783")
    >>> p.scheme, p.location, dict(p.options)
    ('cave', 'flywire_fafb_public', {'materialization': '783'})
    >>> parse_uri("release:///data/hemibrain").location
    '/data/hemibrain'
    >>> parse_uri("hemibrain")
    Traceback (most recent call last):
    ...
    connectomix.errors.InvalidURIError: 'hemibrain' is not a dataset URI: expected 'scheme://location[?option=value&...]', e.g. 'release:///path/to/folder' or 'neuprint://neuprint.janelia.org/hemibrain:v1.2.1'
    """
    if not isinstance(uri, str) or "://" not in uri:
        raise InvalidURIError(
            f"{uri!r} is not a dataset URI: expected 'scheme://location[?option=value&...]', e.g. "
            "'release:///path/to/folder' or 'neuprint://neuprint.janelia.org/hemibrain:v1.2.1'"
        )
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    if not _SCHEME.match(scheme):
        raise InvalidURIError(f"{uri!r} has an invalid scheme {scheme!r}")
    location, _, query = rest.partition("?")
    if "#" in query or "#" in location:
        raise InvalidURIError(f"{uri!r}: fragments ('#...') are not allowed in dataset URIs")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidURIError(f"{uri!r} has a malformed option string {query!r}: {exc}") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise InvalidURIError(f"{uri!r} sets option {key!r} twice")
        options[key] = value
    if not location:
        raise InvalidURIError(f"{uri!r} has nothing after {scheme + '://'!r}")
    # urlsplit validates ports/brackets for host-style locations
    try:
        urlsplit(f"{scheme}://{location}").port
    except ValueError as exc:
        raise InvalidURIError(f"{uri!r}: {exc}") from None
    return ParsedURI(scheme=scheme, location=location, options=options, raw=uri)


@dataclass(frozen=True)
class DatasetConfig:
    """One ``[datasets.<name>]`` entry."""

    name: str
    uri: str
    options: Mapping[str, Any]


def config_path() -> Path:
    """Where connectomix looks for its TOML config."""
    env = os.environ.get("CONNECTOMIX_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("connectomix")) / "config.toml"


def load_config(path: str | os.PathLike | None = None) -> dict[str, DatasetConfig]:
    """Read the named datasets from the TOML config (empty if there is no file).

    Raises
    ------
    ConfigError
        Invalid TOML, or a dataset entry without a string ``uri``.
    """
    path = Path(path) if path is not None else config_path()
    if not path.exists():
        if os.environ.get("CONNECTOMIX_CONFIG") and path == config_path():
            raise ConfigError(f"CONNECTOMIX_CONFIG points at {str(path)!r}, which does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"datasets"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; only [datasets.<name>] tables are read")
    datasets = data.get("datasets", {})
    if not isinstance(datasets, dict):
        raise ConfigError(f"{path}: 'datasets' must be a table of [datasets.<name>] entries")
    out = {}
    for name, entry in datasets.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str):
            raise ConfigError(f"{path}: [datasets.{name}] needs a string 'uri' key, e.g. uri = \"release:///path\"")
        opts = {k: v for k, v in entry.items() if k != "uri"}
        out[name] = DatasetConfig(name=name, uri=entry["uri"], options=protect_options(opts))
    return out
