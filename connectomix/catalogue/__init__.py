"""The dataset catalogue: every public dataset connectomix knows by name, as data with sources.

The catalogue is the TOML files beside this module (one per dataset family,
format in ``README.md`` here). Each ``[datasets.<name>]`` entry describes one
dataset a user can open by name -- server, dataset or datastack, version,
tables and columns, coordinate units, score column and recommended
threshold, where neuron annotations live and in what shape, licence and
citation -- and each ``[releases.<name>]`` entry a set of downloadable release
files. Every value carries the public source it was checked against
(a repository path, a documentation URL) or says ``"unverified"``::

    server = { value = "neuprint.janelia.org", source = "connectome-neuprint/neuprint-python:docs/source/quickstart.rst:56@de683ff" }

Well-known names therefore open with no configuration:
``connectomix.open("hemibrain")`` resolves through :func:`uris` to
``neuprint://neuprint.janelia.org/hemibrain:v1.2.1`` (a name in the user's
config file still wins). Resolving needs no network.

Examples
--------
>>> from connectomix import catalogue
>>> entry = catalogue.get("hemibrain")
>>> entry.uri
'neuprint://neuprint.janelia.org/hemibrain:v1.2.1'
>>> entry.voxel_size_nm, entry.units
([8, 8, 8], 'voxel')
>>> entry.sources_of("server")
('connectome-neuprint/neuprint-python:docs/source/quickstart.rst:56@de683ff',)
>>> catalogue.get("flywire").score_column, catalogue.get("flywire").threshold_op
('cleft_score', '>')
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

from ..errors import ConfigError, DatasetNotFoundError, suggest

__all__ = [
    "Sourced", "DatasetEntry", "ReleaseEntry", "Catalogue", "load", "get", "names", "uris",
    "DEFAULT_CAVE_SERVER", "SOURCE_PATTERN", "CATALOGUE_DIR",
]

#: Where the catalogue's TOML files live.
CATALOGUE_DIR = Path(__file__).parent

#: caveclient's default global server (``caveclient/endpoints.py``); CAVE URIs omit it.
DEFAULT_CAVE_SERVER = "https://global.daf-apis.com"

#: What a source must look like: a URL, ``owner/repo:path[:lines][@commit]``,
#: ``secondary: ...`` (read in another public document that quotes it),
#: ``project: ...`` (a fact about connectomix itself), or ``unverified[: why]``.
SOURCE_PATTERN = re.compile(
    r"^(?:https?://\S+.*"
    r"|gs://\S+.*"
    r"|[A-Za-z0-9][\w.-]*/[\w.-]+:\S.*"
    r"|secondary: .+"
    r"|project: .+"
    r"|unverified(?:: .+)?)$"
)

_LEAF_KEYS = {"value", "source", "sources", "note"}
#: Keys every ``[datasets.<name>]`` entry must have (dotted paths).
REQUIRED = ("description", "backend", "server", "dataset", "version", "public", "live_queries", "row_cap",
            "licence", "citation", "coordinates.unit", "coordinates.voxel_size_nm", "annotations.source",
            "annotations.shape")
_BACKENDS = ("neuprint", "cave")


@dataclass(frozen=True)
class Sourced:
    """One catalogue value with the public source(s) it was checked against."""

    value: Any
    sources: tuple[str, ...]
    note: str | None = None

    @property
    def verified(self) -> bool:
        """False when every source says ``unverified``."""
        return not all(s.startswith("unverified") for s in self.sources)


def _parse_leaf(raw: Mapping[str, Any], where: str) -> Sourced:
    extra = set(raw) - _LEAF_KEYS
    if extra or "value" not in raw:
        raise ConfigError(f"catalogue {where}: expected {{ value = ..., source = \"...\" }}; got keys {sorted(raw)}")
    if ("source" in raw) == ("sources" in raw):
        raise ConfigError(f"catalogue {where}: give exactly one of 'source' or 'sources' (write \"unverified\" "
                          "when the value could not be checked)")
    sources = (raw["source"],) if "source" in raw else tuple(raw["sources"])
    if not sources or not all(isinstance(s, str) and SOURCE_PATTERN.match(s) for s in sources):
        raise ConfigError(f"catalogue {where}: every source must be a URL, 'owner/repo:path', 'secondary: ...', "
                          f"'project: ...' or 'unverified'; got {list(sources)!r}")
    note = raw.get("note")
    if note is not None and not isinstance(note, str):
        raise ConfigError(f"catalogue {where}: note must be a string")
    return Sourced(raw["value"], sources, note)


def _parse_tree(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A table of sourced leaves and sub-tables: leaves become :class:`Sourced`, sub-tables dicts."""
    out: dict[str, Any] = {}
    for key, item in raw.items():
        path = f"{where}.{key}"
        if not isinstance(item, dict):
            raise ConfigError(f"catalogue {path}: a bare value without a source; write "
                              f"{key} = {{ value = ..., source = \"...\" }}")
        out[key] = _parse_leaf(item, path) if "value" in item else _parse_tree(item, path)
    return out


class _Entry:
    """Shared access to a parsed entry: ``get("synapses.score_column")`` and friends."""

    def __init__(self, name: str, tree: Mapping[str, Any], file: Path):
        self.name = name
        self.file = file
        self._tree = tree

    def get(self, path: str) -> Sourced | None:
        """The :class:`Sourced` value at a dotted ``path``, or None if the entry has none."""
        node: Any = self._tree
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, Sourced) else None

    def value(self, path: str, default: Any = None) -> Any:
        """The plain value at ``path`` (``default`` if absent)."""
        item = self.get(path)
        return default if item is None else item.value

    def sources_of(self, path: str) -> tuple[str, ...]:
        """The sources of the value at ``path`` (empty if absent)."""
        item = self.get(path)
        return () if item is None else item.sources

    def leaves(self) -> Iterator[tuple[str, Sourced]]:
        """Every ``(dotted path, Sourced)`` of the entry."""
        def walk(node: Mapping[str, Any], prefix: str):
            for key, item in node.items():
                path = f"{prefix}{key}"
                if isinstance(item, Sourced):
                    yield path, item
                else:
                    yield from walk(item, path + ".")
        yield from walk(self._tree, "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class DatasetEntry(_Entry):
    """One ``[datasets.<name>]`` entry: a dataset that opens by name.

    The properties are the plain values the backends need; :meth:`get` gives
    any value with its sources.
    """

    backend = property(lambda self: self.value("backend"))
    server = property(lambda self: self.value("server"))
    #: The neuPrint dataset tag (``hemibrain:v1.2.1``) or the CAVE datastack name.
    dataset = property(lambda self: self.value("dataset"))
    version = property(lambda self: self.value("version"))
    public = property(lambda self: self.value("public"))
    live_queries = property(lambda self: self.value("live_queries"))
    row_cap = property(lambda self: self.value("row_cap"))
    licence = property(lambda self: self.value("licence"))
    citation = property(lambda self: tuple(self.value("citation", ())))
    description = property(lambda self: self.value("description"))
    #: ``"voxel"``, ``"nm"`` or a per-table description (CAVE).
    units = property(lambda self: self.value("coordinates.unit"))
    voxel_size_nm = property(lambda self: self.value("coordinates.voxel_size_nm"))
    synapse_table = property(lambda self: self.value("synapses.table"))
    synapse_unit = property(lambda self: self.value("synapses.unit", self.units))
    score_column = property(lambda self: self.value("synapses.score_column"))
    score_scale = property(lambda self: self.value("synapses.score_scale"))
    recommended_threshold = property(lambda self: self.value("synapses.recommended_threshold"))
    threshold_op = property(lambda self: self.value("synapses.threshold_op"))
    annotation_source = property(lambda self: self.value("annotations.source"))
    annotation_shape = property(lambda self: self.value("annotations.shape"))

    @property
    def uri(self) -> str:
        """The dataset URI this name resolves to (no network needed).

        Examples
        --------
        >>> from connectomix import catalogue
        >>> catalogue.get("flywire").uri
        'cave://flywire_fafb_public?materialization=783'
        >>> catalogue.get("fanc").uri
        'cave://fanc_production_mar2021'
        """
        if self.backend == "neuprint":
            host = re.sub(r"^https?://", "", str(self.server)).rstrip("/")
            return f"neuprint://{host}/{self.dataset}"
        options: dict[str, str] = {}
        if isinstance(self.version, int) and not isinstance(self.version, bool):
            options["materialization"] = str(self.version)
        if str(self.server).rstrip("/") != DEFAULT_CAVE_SERVER:
            options["server"] = str(self.server)
        query = f"?{urlencode(options)}" if options else ""
        return f"cave://{self.dataset}{query}"

    def _flag(self, paths: tuple[str, ...], text: str) -> str:
        """``text``, marked ``[unverified]`` if any value at ``paths`` has no checked source."""
        items = [self.get(p) for p in paths]
        return text + (" [unverified]" if any(i is not None and not i.verified for i in items) else "")

    def summary_lines(self, width: int = 80) -> list[str]:
        """A few lines describing the entry for ``connectomix datasets --long``, wrapped at ``width``."""
        score = self.score_column
        if score in (None, "none"):
            score_text = "none"
        else:
            threshold = self.recommended_threshold
            value = self.value("synapses.recommended_threshold_value")
            if value is not None and not isinstance(value, str):
                threshold = f"{threshold} = {value}"
            op = self.threshold_op or ""
            score_text = f"{score} {op} {threshold}".replace("  ", " ") if threshold is not None else str(score)
            if self.score_scale:
                score_text += f" ({self.score_scale})"
        units = self.units
        if self.voxel_size_nm is not None and units == "voxel":
            units = f"{self.voxel_size_nm} nm voxels"
        elif self.voxel_size_nm is not None and units != "nm":
            units = f"{units}; voxels {self.voxel_size_nm} nm"
        host = re.sub(r"^https?://", "", str(self.server))
        fields = [
            ("", self._flag(("backend", "server", "dataset", "version"),
                            f"{self.backend} | {host} | {self.dataset} | version {self.version}")),
            ("units", self._flag(("coordinates.unit", "coordinates.voxel_size_nm"), str(units))),
            ("score", self._flag(("synapses.score_column",) if score_text == "none" else
                                 ("synapses.score_column", "synapses.recommended_threshold"), score_text)),
            ("annotations", self._flag(("annotations.source", "annotations.shape"),
                                       f"{self.annotation_source} ({self.annotation_shape})")),
        ]
        out = []
        for label, text in fields:
            prefix = f"    {label + ': ' if label else ''}"
            out += textwrap.wrap(text, width=width, initial_indent=prefix, subsequent_indent=" " * 8,
                                 break_on_hyphens=False) or [prefix.rstrip()]
        return out


class ReleaseEntry(_Entry):
    """One ``[releases.<name>]`` entry: downloadable release files of a dataset."""

    url = property(lambda self: self.value("url"))
    description = property(lambda self: self.value("description"))

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """``{role: {"name": ..., "columns": ..., ...}}`` (plain values)."""
        raw = self._tree.get("files", {})
        return {role: {k: v.value for k, v in spec.items() if isinstance(v, Sourced)} for role, spec in raw.items()}


class Catalogue:
    """The parsed catalogue: :attr:`datasets` and :attr:`releases` by name."""

    def __init__(self, datasets: Mapping[str, DatasetEntry], releases: Mapping[str, ReleaseEntry]):
        self.datasets = MappingProxyType(dict(datasets))
        self.releases = MappingProxyType(dict(releases))

    def get(self, name: str) -> DatasetEntry:
        """The dataset entry ``name``.

        Raises
        ------
        DatasetNotFoundError
            ``name`` is not in the catalogue (the message lists the closest names).
        """
        try:
            return self.datasets[name]
        except KeyError:
            raise DatasetNotFoundError(
                f"the dataset catalogue has no dataset {name!r}; {suggest(name, self.datasets)}") from None

    def uris(self, backend: str | None = None) -> dict[str, str]:
        """``{name: uri}`` of every dataset (of one ``backend`` if given)."""
        return {name: entry.uri for name, entry in sorted(self.datasets.items())
                if backend is None or entry.backend == backend}


def _check_dataset(entry: DatasetEntry) -> None:
    missing = [path for path in REQUIRED if entry.get(path) is None]
    if missing:
        raise ConfigError(f"catalogue {entry.file.name}: [datasets.{entry.name}] lacks {missing}")
    if entry.backend not in _BACKENDS:
        raise ConfigError(f"catalogue {entry.file.name}: [datasets.{entry.name}] backend must be one of "
                          f"{list(_BACKENDS)}; got {entry.backend!r}")
    version = entry.version
    if entry.backend == "cave" and not (version == "auto" or (isinstance(version, int) and version > 0)):
        raise ConfigError(f"catalogue {entry.file.name}: [datasets.{entry.name}] a CAVE version must be a "
                          f"materialization number or \"auto\"; got {version!r}")


def load(directory: str | Path | None = None) -> Catalogue:
    """Parse and check the catalogue files in ``directory`` (default: the packaged catalogue).

    Raises
    ------
    ConfigError
        A malformed file: invalid TOML, a value without a source, a source of
        an unknown form, a dataset lacking a required key, a name defined twice.
    """
    if directory is None:
        return _packaged()
    return _load(Path(directory))


@lru_cache(maxsize=1)
def _packaged() -> Catalogue:
    return _load(CATALOGUE_DIR)


def _load(directory: Path) -> Catalogue:
    datasets: dict[str, DatasetEntry] = {}
    releases: dict[str, ReleaseEntry] = {}
    for file in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"catalogue {file.name} is not valid TOML: {exc}") from None
        unknown = set(data) - {"datasets", "releases"}
        if unknown:
            raise ConfigError(f"catalogue {file.name}: unknown top-level table(s) {sorted(unknown)}")
        for kind, target, cls in (("datasets", datasets, DatasetEntry), ("releases", releases, ReleaseEntry)):
            for name, raw in data.get(kind, {}).items():
                if name in datasets or name in releases:
                    raise ConfigError(f"catalogue {file.name}: {kind}.{name} is defined twice")
                if not isinstance(raw, dict):
                    raise ConfigError(f"catalogue {file.name}: [{kind}.{name}] must be a table")
                entry = cls(name, _parse_tree(raw, f"{file.name} {kind}.{name}"), file)
                if isinstance(entry, DatasetEntry):
                    _check_dataset(entry)
                target[name] = entry
    return Catalogue(datasets, releases)


def get(name: str) -> DatasetEntry:
    """The packaged catalogue's entry ``name`` (see :meth:`Catalogue.get`)."""
    return load().get(name)


def names() -> list[str]:
    """The names of the packaged catalogue's datasets, sorted.

    Examples
    --------
    >>> from connectomix import catalogue
    >>> {"hemibrain", "manc", "flywire", "banc", "fanc", "microns"} <= set(catalogue.names())
    True
    """
    return sorted(load().datasets)


def uris(backend: str | None = None) -> dict[str, str]:
    """``{name: uri}`` of the packaged catalogue (see :meth:`Catalogue.uris`)."""
    return load().uris(backend)
