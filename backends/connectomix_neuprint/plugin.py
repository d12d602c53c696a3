"""pluggy registration of the neuPrint backend."""

from connectomix.hookspecs import hookimpl


@hookimpl
def connectomix_backends():
    from .backend import NeuprintBackend

    return [NeuprintBackend]


@hookimpl
def connectomix_datasets():
    """The neuprint datasets of the dataset catalogue (``connectomix/catalogue``), by name."""
    from connectomix.catalogue import uris

    return uris(backend="neuprint")
