"""pluggy registration of the CAVE backend."""

from connectomix.hookspecs import hookimpl


@hookimpl
def connectomix_backends():
    from .backend import CaveBackend

    return [CaveBackend]


@hookimpl
def connectomix_datasets():
    """The cave datasets of the dataset catalogue (``connectomix/catalogue``), by name."""
    from connectomix.catalogue import uris

    return uris(backend="cave")
