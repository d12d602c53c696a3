"""pluggy hook specifications: how plugins announce backends and built-in datasets.

A plugin is a module listed under the ``connectomix.backends`` entry-point
group::

    [project.entry-points."connectomix.backends"]
    mybackend = "my_package.connectomix_plugin"

whose module implements one or both hooks with :data:`hookimpl`::

    from connectomix.hookspecs import hookimpl

    @hookimpl
    def connectomix_backends():
        return [MyBackend]

Data calls never go through pluggy: the core uses the hooks only to discover
backend classes and then calls the chosen backend object directly.
"""

from __future__ import annotations

import pluggy

PROJECT = "connectomix"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marker for hook implementations in plugins.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def connectomix_backends() -> list:
    """Return the :class:`connectomix.backend.Backend` subclasses this plugin provides.

    Every implementation is called (1:N); the results are merged. A backend's
    ``schemes`` must not clash with another installed backend's. A backend
    implements the primitives of :class:`~connectomix.backend.Backend` and, for
    each optional :class:`~connectomix.backend.Capability` it declares, its
    method: ``SKELETONS`` :meth:`~connectomix.backend.Backend.get_skeletons`,
    ``MESHES`` :meth:`~connectomix.backend.Backend.get_meshes` (navis neurons in
    nm; ``IdsNotFoundError`` naming ids without one). The conformance suite
    (:mod:`connectomix.testing`) checks both.
    """


@hookspec
def connectomix_datasets() -> dict:
    """Return built-in dataset names mapped to URIs, e.g. ``{"sample": "release:///..."}``.

    Names in the user's TOML config take precedence over built-in names.
    """
