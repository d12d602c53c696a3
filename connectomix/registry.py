"""Discovery of backend plugins (pluggy + entry points) and the read-only registry."""

from __future__ import annotations

import importlib.metadata
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import pluggy

from . import hookspecs
from .backend import Backend
from .errors import BackendNotFoundError, suggest

__all__ = ["BackendInfo", "Registry", "ENTRY_POINT_GROUP", "get_registry", "refresh"]

ENTRY_POINT_GROUP = "connectomix.backends"


@dataclass(frozen=True)
class BackendInfo:
    """Summary of an installed backend, as listed by :func:`connectomix.backends`."""

    name: str
    schemes: tuple[str, ...]
    description: str
    capabilities: tuple[str, ...]
    plugin: str
    cls: type[Backend]


class Registry:
    """Backends and built-in datasets found through the ``connectomix.backends`` entry points.

    One broken plugin (it fails to import, or its hook raises, or it returns
    something that is not a backend class) is skipped with a
    :class:`RuntimeWarning`; the others still load.

    Parameters
    ----------
    entry_points
        Entry points to load (default: the installed ones in
        :data:`ENTRY_POINT_GROUP`). Tests pass fake ones.
    """

    def __init__(self, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None):
        if entry_points is None:
            entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        for ep in entry_points:
            try:
                plugin = ep.load()
                if self._pm.is_registered(plugin):
                    continue
                self._pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not break connectomix
                warnings.warn(
                    f"connectomix backend plugin {ep.name!r} ({ep.value}) failed to load and is "
                    f"skipped: {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=2,
                )
        self._pm.check_pending()
        self._backends, self._schemes = self._collect_backends()
        self._datasets = self._collect_datasets()

    def _call_each(self, hook_name: str):
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
            try:
                yield impl.plugin_name, impl.function()
            except Exception as exc:
                warnings.warn(
                    f"connectomix plugin {impl.plugin_name!r} failed in {hook_name}() and is "
                    f"skipped: {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=3,
                )

    def _collect_backends(self):
        backends: dict[str, BackendInfo] = {}
        schemes: dict[str, str] = {}
        for plugin, classes in self._call_each("connectomix_backends"):
            for cls in classes or ():
                if not (isinstance(cls, type) and issubclass(cls, Backend) and cls.name):
                    warnings.warn(
                        f"connectomix plugin {plugin!r} returned {cls!r}, which is not a named "
                        "connectomix.backend.Backend subclass; skipped",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    continue
                clash = [s for s in cls.schemes if s in schemes] + ([cls.name] if cls.name in backends else [])
                if clash:
                    warnings.warn(
                        f"connectomix plugin {plugin!r}: backend {cls.name!r} clashes with an "
                        f"installed backend on {clash}; skipped",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    continue
                backends[cls.name] = BackendInfo(
                    name=cls.name,
                    schemes=tuple(cls.schemes),
                    description=cls.description,
                    capabilities=tuple(sorted(c.value for c in cls.capabilities)),
                    plugin=plugin,
                    cls=cls,
                )
                for s in cls.schemes:
                    schemes[s] = cls.name
        return MappingProxyType(backends), MappingProxyType(schemes)

    def _collect_datasets(self) -> Mapping[str, str]:
        datasets: dict[str, str] = {}
        for _plugin, mapping in self._call_each("connectomix_datasets"):
            for name, uri in (mapping or {}).items():
                datasets.setdefault(name, uri)
        return MappingProxyType(datasets)

    @property
    def backends(self) -> Mapping[str, BackendInfo]:
        """Installed backends by name (read-only)."""
        return self._backends

    @property
    def datasets(self) -> Mapping[str, str]:
        """Built-in dataset names and their URIs (read-only)."""
        return self._datasets

    def backend_for_scheme(self, scheme: str) -> type[Backend]:
        """The backend class that opens ``scheme://`` URIs."""
        try:
            return self._backends[self._schemes[scheme]].cls
        except KeyError:
            raise BackendNotFoundError(
                f"No installed connectomix backend handles URIs starting with {scheme + '://'!r}; "
                f"{suggest(scheme, self._schemes)}"
            ) from None


_lock = threading.Lock()
_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry of installed plugins (loaded on first use)."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = Registry()
        return _registry


def refresh() -> Registry:
    """Reload the entry points (after installing a plugin in a running session)."""
    global _registry
    with _lock:
        _registry = None
    return get_registry()
