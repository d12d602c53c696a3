"""pluggy registration of the neuPrint backend."""

from connectomix.hookspecs import hookimpl


@hookimpl
def connectomix_backends():
    from .backend import NeuprintBackend

    return [NeuprintBackend]
