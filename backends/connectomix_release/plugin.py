"""pluggy registration of the release backend and the embedded ``sample`` dataset."""

from __future__ import annotations

from pathlib import Path

from connectomix.hookspecs import hookimpl

SAMPLE_DIR = Path(__file__).parent / "data" / "sample"


@hookimpl
def connectomix_backends():
    from .backend import ReleaseBackend

    return [ReleaseBackend]


@hookimpl
def connectomix_datasets():
    return {"sample": SAMPLE_DIR.as_uri().replace("file://", "release://", 1)}
