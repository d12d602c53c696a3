"""pluggy registration of the CAVE backend."""

from connectomix.hookspecs import hookimpl


@hookimpl
def connectomix_backends():
    from .backend import CaveBackend

    return [CaveBackend]
