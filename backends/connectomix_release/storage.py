"""Where a release folder's files are: a local folder, or a URL that fsspec reads (``s3://``, ``gs://``, ...).

A remote release is read in place: DuckDB and Dask open its Parquet files
through fsspec and fetch byte ranges (footers, then the row groups a filter
keeps), never whole files. Credentials are the store's own: s3fs reads the
usual ``AWS_*`` environment variables and ``~/.aws`` files, gcsfs the Google
application-default credentials; ``anon=True`` reads public buckets without
any. ``storage_options`` are passed to fsspec as they are and never shown in
a repr, message or cache key (they may hold secrets).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from connectomix.errors import DataFormatError, InvalidArgumentError, InvalidURIError

from .reads import http_filesystem
from .writer import quote_path, quote_str

__all__ = ["Location", "is_url"]


def is_url(where: str | os.PathLike) -> bool:
    """True for ``protocol://...`` (a remote or fsspec location), False for a local path."""
    return isinstance(where, str) and "://" in where and not where.startswith("file://")


class Location:
    """The folder of a release, local or remote, and the fsspec filesystem that reads it.

    Parameters
    ----------
    where : str or path-like
        A local folder, or a URL such as ``s3://bucket/releases/flywire-783``.
    storage_options : dict, optional
        Passed to ``fsspec.filesystem`` for a URL (e.g. ``{"anon": True}``,
        ``{"endpoint_url": ...}``). Never printed.

    Examples
    --------
    >>> import tempfile
    >>> loc = Location(tempfile.mkdtemp())
    >>> loc.remote, loc.isfile("manifest.json")
    (False, False)
    """

    def __init__(self, where: str | os.PathLike, storage_options: dict[str, Any] | None = None):
        if storage_options is not None and not isinstance(storage_options, dict):
            raise InvalidArgumentError(f"storage_options must be a dict; got {type(storage_options).__name__}")
        self.remote = is_url(where)
        self.storage_options = dict(storage_options or {})
        if not self.remote:
            if self.storage_options:
                raise InvalidArgumentError("storage_options apply to URLs (s3://, gs://, ...), not local folders")
            where = str(where)[len("file://"):] if str(where).startswith("file://") else where
            self.path: Path | None = Path(where).expanduser().resolve()
            self.root = str(self.path)
            self.fs = None
            return
        import fsspec

        protocol = str(where).split("://", 1)[0].lower()
        fs_options = dict(self.storage_options)
        if protocol in ("s3", "s3a"):
            # s3fs reads ahead 50 MB blocks by default: a filter that needs a few row groups would fetch
            # ~50 MB per read (measured: 3.9 GB for a 1.6 GB release); 1 MiB blocks fetch what is read
            fs_options.setdefault("default_block_size", 2**20)
        try:
            # (http(s): fsspec's, with the modified() DuckDB asks for)
            self.fs = http_filesystem(fs_options) if protocol in ("http", "https") else fsspec.filesystem(
                protocol, **fs_options)
        except (ImportError, ValueError) as exc:
            raise InvalidURIError(
                f"cannot read {protocol}:// URLs: {exc}. Install the fsspec implementation of that store "
                "(s3://: pip install 'connectomix[s3]', i.e. s3fs; gs://: gcsfs)") from None
        except TypeError as exc:
            raise InvalidArgumentError(f"storage_options not accepted by fsspec's {protocol!r} filesystem: "
                                       f"{type(exc).__name__}") from None
        self.path = None
        self.protocol = protocol
        self.root = str(where).rstrip("/")
        # one listing fills fsspec's listings cache: the many size/modified look-ups of the readers are
        # then answered from it instead of one request each (fingerprints() lists afresh on every query)
        try:
            self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            pass  # reported as a missing manifest.json
        except OSError as exc:
            raise DataFormatError(f"cannot list {self.root!r}: {type(exc).__name__}: {exc}") from None

    def __repr__(self) -> str:  # never the storage options
        return f"Location({self.root!r})"

    # -- names ---------------------------------------------------------------------------------

    def url(self, name: str) -> str:
        """The full path or URL of ``name`` inside the release."""
        return str(self.path / name) if self.path is not None else f"{self.root}/{name}"

    def sql(self, name: str) -> str:
        """SQL string literal of ``name`` for DuckDB's readers (local paths glob-escaped, see ``quote_path``)."""
        if self.path is not None:
            return quote_path(self.path / name)
        if any(c in self.root for c in "*?["):
            raise InvalidURIError(f"release URL {self.root!r} contains a glob character (*, ? or [); "
                                  "remote release folders must be named without them")
        return quote_str(self.url(name))

    # -- files ----------------------------------------------------------------------------------

    def _info(self, name: str) -> dict | None:
        try:
            return self.fs.info(self.url(name))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DataFormatError(f"cannot read {self.url(name)!r}: {type(exc).__name__}: {exc}") from None

    def isfile(self, name: str) -> bool:
        if self.path is not None:
            return (self.path / name).is_file()
        info = self._info(name)
        return info is not None and info.get("type") == "file"

    def isdir(self, name: str = "") -> bool:
        if self.path is not None:
            return (self.path / name).is_dir() if name else self.path.is_dir()
        if not name:
            # object stores have no folders: a release "exists" when its manifest does (checked next)
            return True
        try:
            return bool(self.fs.ls(self.url(name), detail=False))
        except FileNotFoundError:
            return False

    def read_bytes(self, name: str) -> bytes:
        if self.path is not None:
            return (self.path / name).read_bytes()
        return self.fs.cat_file(self.url(name))

    def listdir(self, name: str) -> list[str]:
        """File names (not paths) in the sub-folder ``name``."""
        if self.path is not None:
            folder = self.path / name
            return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        try:
            return sorted(p.rsplit("/", 1)[-1] for p in self.fs.ls(self.url(name), detail=False))
        except FileNotFoundError:
            return []

    def fingerprints(self, names: list[str]) -> dict[str, Any]:
        """A cheap identity of each file: local ``stat`` values, or the store's ETag, size and mtime."""
        if self.path is not None:
            from connectomix.cache import file_fingerprints

            return file_fingerprints(self.path, names)
        # one listing request for all of them (fresh: a release replaced in the bucket must show; over HTTP
        # the HEADs below are fresh too, and then kept for the readers until the next query's fingerprints)
        if self.protocol in ("http", "https"):
            self.fs.invalidate_cache()
        try:
            listing = {e["name"].rstrip("/").rsplit("/", 1)[-1]: e
                       for e in self.fs.ls(self.root, detail=True, refresh=True)}
        except FileNotFoundError:
            listing = {}
        except OSError as exc:
            raise DataFormatError(f"cannot list {self.root!r}: {type(exc).__name__}: {exc}") from None
        out: dict[str, Any] = {}
        for name in names:
            info = listing.get(name)
            if info is not None and info.get("type") == "file" and info.get("size") is None:
                info = self._info(name)  # (an HTTP index lists names only: HEAD gives size, ETag, Last-Modified)
            if info is None or info.get("type") != "file":
                out[name] = None
                continue
            mtime = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("Last-Modified")
            out[name] = [info.get("size"), str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or ""),
                         str(mtime or "")]
        return out

    def identity(self) -> str:
        """The location as it appears in cache keys: the local path, or the URL (never credentials)."""
        if self.path is not None:
            return self.root
        endpoint = self.storage_options.get("endpoint_url") or (
            self.storage_options.get("client_kwargs") or {}).get("endpoint_url")
        if endpoint:  # two stores can hold the same bucket name; the endpoint tells them apart
            return f"{self.root} @ {hashlib.sha256(str(endpoint).encode()).hexdigest()[:16]}"
        return self.root

    def register(self, con: Any) -> None:
        """Let a DuckDB connection read this location's URLs through fsspec."""
        if self.fs is not None:
            con.register_filesystem(self.fs)
