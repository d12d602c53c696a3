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
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .backend import ParsedURI
from .errors import ConfigError, InvalidURIError

__all__ = ["Secret", "SECRET_OPTION_NAMES", "config_path", "configured_dataset", "load_config", "parse_uri",
           "DatasetConfig", "redact", "scrub_exception"]

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


#: ``name=value`` pairs (URI query strings, form bodies) whose value is a secret.
_SECRET_PAIR = re.compile(
    r"(?i)\b((?:middle_)?(?:auth_|api_|access_)?token|password|secret)(=|%3D)([^&\s'\"#;,)]+)")
#: ``Authorization: Bearer x`` / ``'Authorization': 'Bearer x'`` / ``Bearer x`` anywhere in a text.
_SECRET_HEADER = re.compile(r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?)(?:(bearer|basic|token)\s+)?[^'\",}\s]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}")
_USERINFO = re.compile(r"(://)[^/@\s:]+:[^/@\s]+@")
_HEADER_NAMES = ("authorization", "cookie", "x-auth-token", "x-api-key")


def redact(text: str) -> str:
    """``text`` with every token-looking value replaced by ``***``.

    Used for everything connectomix shows: error messages, reprs, listings.

    Examples
    --------
    >>> redact("neuprint://host/hemibrain:v1.2.1?token=abc&verify=false")
    'neuprint://host/hemibrain:v1.2.1?token=***&verify=false'
    >>> redact("{'Authorization': 'Bearer eyJhbGciOi'}")
    "{'Authorization': '***'}"
    """
    text = _SECRET_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    text = _SECRET_HEADER.sub(lambda m: f"{m.group(1)}***", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    return _USERINFO.sub(lambda m: f"{m.group(1)}***@", text)


def scrub_exception(exc: BaseException) -> BaseException:
    """Remove secrets from ``exc`` and every exception chained to it, in place; return ``exc``.

    Messages and ``url`` attributes are redacted with :func:`redact`; the
    request headers that ``requests``/``urllib3`` exceptions keep (on
    ``.request`` and ``.response.request``) lose their ``Authorization`` and
    cookie values. This is the one place where connectomix cleans an error
    before it reaches the caller (:class:`connectomix.Dataset`,
    :func:`connectomix.open` and the command line call it).
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        try:
            e.args = tuple(redact(a) if isinstance(a, str) else a for a in e.args)
        except (AttributeError, TypeError):  # pragma: no cover - exotic exceptions
            pass
        for name in ("url", "server_message", "query"):
            value = getattr(e, name, None)
            if isinstance(value, str):
                try:
                    setattr(e, name, redact(value))
                except (AttributeError, TypeError):  # pragma: no cover - read-only attribute
                    pass
        for holder in (getattr(e, "request", None), getattr(getattr(e, "response", None), "request", None)):
            _scrub_headers(getattr(holder, "headers", None))
            if isinstance(getattr(holder, "url", None), str):
                try:
                    holder.url = redact(holder.url)
                except (AttributeError, TypeError):  # pragma: no cover
                    pass
        # exceptions held as arguments or as urllib3's ``reason`` print inside their holder's message
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return exc


def _scrub_headers(headers: Any) -> None:
    if not isinstance(headers, Mapping) or not hasattr(headers, "__setitem__"):
        return
    for key in list(headers):
        if str(key).lower() in _HEADER_NAMES or "token" in str(key).lower():
            headers[key] = "***"


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
        shown = redact(uri) if isinstance(uri, str) else uri
        raise InvalidURIError(
            f"{shown!r} is not a dataset URI: expected 'scheme://location[?option=value&...]', e.g. "
            "'release:///path/to/folder' or 'neuprint://neuprint.janelia.org/hemibrain:v1.2.1'"
        )
    shown = redact(uri)  # the form every message and ParsedURI.raw use
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    if not _SCHEME.match(scheme):
        raise InvalidURIError(f"{shown!r} has an invalid scheme {scheme!r}")
    location, question, query = rest.partition("?")
    if question and not query:
        raise InvalidURIError(
            f"{shown!r} ends with '?' but sets no option; a '?' in a folder name is written %3F "
            "(e.g. 'release:///data/run%3F1')")
    if "#" in query or "#" in location:
        raise InvalidURIError(f"{shown!r}: fragments ('#...') are not allowed in dataset URIs")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidURIError(f"{shown!r} has a malformed option string {redact(query)!r}: {redact(str(exc))}") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise InvalidURIError(f"{shown!r} sets option {key!r} twice")
        options[key] = value
    if not location:
        raise InvalidURIError(f"{shown!r} has nothing after {scheme + '://'!r}")
    # urlsplit validates ports/brackets for host-style locations
    try:
        urlsplit(f"{scheme}://{location}").port
    except ValueError as exc:
        raise InvalidURIError(f"{shown!r}: {redact(str(exc))}") from None
    return ParsedURI(scheme=scheme, location=location, options=protect_options(options), raw=shown)


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
        Invalid TOML, or a dataset entry without a string ``uri``; the message
        names the file and the line.
    """
    entries, problem = _read_config(path)
    if problem is not None:
        raise problem
    for entry in entries.values():
        if isinstance(entry, ConfigError):
            raise entry
    return entries  # type: ignore[return-value]


def configured_dataset(name: str, *, builtin: bool = False) -> DatasetConfig | None:
    """The config entry for ``name``, or ``None`` if the config does not name it.

    A broken config only breaks the names it concerns: a bad entry raises for
    its own name only, and a file that cannot be read as a whole raises for
    every name except a built-in one (``builtin=True``) the file does not
    mention, which keeps working with a :class:`RuntimeWarning`.

    Raises
    ------
    ConfigError
        The entry of ``name`` (or the whole file) is malformed; the message
        names the file and the line.
    """
    entries, problem = _read_config(None)
    if problem is not None:
        if builtin and not _header_line(problem.text, name):
            warnings.warn(f"{problem}; using the built-in dataset {name!r}", RuntimeWarning, stacklevel=3)
            return None
        raise problem
    entry = entries.get(name)
    if isinstance(entry, ConfigError):
        raise entry
    return entry


class _FileProblem(ConfigError):
    """A config file that cannot be read as a whole (keeps its text to find names in it)."""

    def __init__(self, message: str, text: str = ""):
        self.text = text
        super().__init__(message)


def _header_line(text: str, name: str) -> int | None:
    """The line number of ``[datasets.<name>]`` (or a ``datasets.<name>`` key) in ``text``, if any."""
    quoted = re.escape(name)
    pattern = re.compile(rf"^[ \t]*\[?[ \t]*datasets[ \t]*\.[ \t]*(?:{quoted}|\"{quoted}\"|'{quoted}')[ \t]*[\].=]", re.M)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _key_line(text: str, key: str) -> str:
    """``" (line N)"`` for the first line starting with ``key`` or ``[key``, else ``""``."""
    m = re.search(rf"^[ \t]*\[*[ \t]*{re.escape(key)}\b", text, re.M)
    return f" (line {text.count(chr(10), 0, m.start()) + 1})" if m else ""


def _read_config(path: str | os.PathLike | None) -> tuple[dict[str, DatasetConfig | ConfigError], _FileProblem | None]:
    """Every entry of the config (or the error that entry has), and a problem of the whole file."""
    path = Path(path) if path is not None else config_path()
    try:
        if not path.exists():
            if os.environ.get("CONNECTOMIX_CONFIG") and path == config_path():
                return {}, _FileProblem(f"CONNECTOMIX_CONFIG points at {str(path)!r}, which does not exist")
            return {}, None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, _FileProblem(f"config file {str(path)!r} cannot be read: {exc}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # the message says "(at line N, column M)"
        return {}, _FileProblem(f"{path} is not valid TOML: {exc}", text)
    unknown = sorted(set(data) - {"datasets"})
    if unknown:
        return {}, _FileProblem(
            f"{path}{_key_line(text, unknown[0])}: unknown top-level key(s) {unknown}; "
            "only [datasets.<name>] tables are read", text)
    datasets = data.get("datasets", {})
    if not isinstance(datasets, dict):
        return {}, _FileProblem(f"{path}{_key_line(text, 'datasets')}: 'datasets' must be a table of "
                                "[datasets.<name>] entries", text)
    out: dict[str, DatasetConfig | ConfigError] = {}
    for name, entry in datasets.items():
        line = _header_line(text, name)
        where = f"{path} (line {line})" if line else str(path)
        if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str):
            out[name] = ConfigError(f"{where}: [datasets.{name}] needs a string 'uri' key, "
                                    'e.g. uri = "release:///path"')
            continue
        opts = {k: v for k, v in entry.items() if k != "uri"}
        out[name] = DatasetConfig(name=name, uri=entry["uri"], options=protect_options(opts))
    return out, None
