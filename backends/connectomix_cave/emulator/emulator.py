""":class:`CaveEmulator`: a release folder served as a CAVE datastack on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from connectomix.config import Secret
from connectomix.errors import InvalidArgumentError

from .app import CaveApp
from .dataset import EmulatedDataset, build_dataset
from .edits import EditScript, VersionSpec
from .faults import FaultInjector, RequestStats
from .home import write_client_home
from .server import AuthPolicy, EmulatorHTTPServer
from .tables import TableNames, TableOptions

__all__ = ["CaveEmulator", "DEFAULT_DATASTACK"]

logger = logging.getLogger("connectomix_cave.emulator")

#: Served by default under fafbseg's name for the public FlyWire datastack, so unmodified fafbseg works.
DEFAULT_DATASTACK = "flywire_fafb_public"


class CaveEmulator:
    """An InfoService + MaterializationEngine + PyChunkedGraph emulator for one release folder.

    Unmodified caveclient (``CAVEclient(emu.datastack, server_address=emu.url,
    auth_token=emu.token)``) and fafbseg (after :meth:`write_client_home`)
    work against it. Version 1 is the release as-is; later versions follow the
    edit script (SYNTHETIC edits; the default script is generated from the
    release, see :func:`~.edits.default_edit_script`).

    Parameters
    ----------
    release_path
        A release folder (``connectomix_release/FORMAT.md``).
    edits
        Edit script file (``.json``/``.toml``), mapping or :class:`EditScript`;
        ``None`` for the default script.
    port, host
        Where to listen (``port=0``: a free port). Only bind to loopback.
    token
        The accepted token (default: a random one, see :attr:`token`).
    datastack
        Datastack name (default ``"flywire_fafb_public"``, fafbseg's public stack).
    aliases
        More names serving the same data (e.g. ``["flywire_fafb_production"]``).
    forbidden_tokens
        Tokens that are recognised but answer 403 everywhere.
    forbidden_datastacks
        Datastack names that exist but answer 403.
    row_limit
        ``QUERY_LIMIT_SIZE``: at most this many rows per query (default 200,000).
    latency_ms
        Added latency per request (changeable at runtime via :attr:`faults`).
    names, options
        Table names and how release values map to table values.
    pcg_table, aligned_volume
        Chunkedgraph table id and aligned volume name reported in the datastack info.
    live_allowed
        False: live queries answer HTTP 403, as on a public datastack (see :func:`.profiles.profile`).
    mesh_layout
        The graphene mesh source's layout: ``"legacy"`` (exact legacy fragments, the default) or
        ``"sharded-draco"`` (FlyWire/MICrONS-style Draco "initial" shards; see :mod:`.meshes`).

    Examples
    --------
    >>> with CaveEmulator("path/to/release") as emu:          # doctest: +SKIP
    ...     client = CAVEclient(emu.datastack, server_address=emu.url, auth_token=emu.token,
    ...                         write_server_cache=False)
    ...     client.materialize.get_versions()
    [1, 2, 4]
    """

    def __init__(self, release_path: str | os.PathLike, *, edits: str | os.PathLike | Mapping[str, Any] |
                 EditScript | None = None, port: int = 0, host: str = "127.0.0.1", token: str | None = None,
                 datastack: str = DEFAULT_DATASTACK, aliases: Iterable[str] = (),
                 forbidden_tokens: Iterable[str] = (), forbidden_datastacks: Iterable[str] = (),
                 row_limit: int = 200_000, latency_ms: float = 0.0, names: TableNames | None = None,
                 options: TableOptions | None = None, pcg_table: str = "connectomix_emulator_v1",
                 aligned_volume: str = "connectomix_emulator", live_allowed: bool = True,
                 mesh_layout: str = "legacy"):
        if not isinstance(row_limit, int) or isinstance(row_limit, bool) or row_limit < 1:
            raise InvalidArgumentError(f"row_limit must be a positive integer, got {row_limit!r}")
        if not isinstance(port, int) or not 0 <= port < 65536:
            raise InvalidArgumentError(f"port must be an integer from 0 to 65535, got {port!r}")
        if token is not None and (not isinstance(token, str) or not token or any(c.isspace() for c in token)):
            raise InvalidArgumentError("token must be a non-empty string without whitespace")
        # hexadecimal: cloud-volume's graphene client accepts only hex or base64 tokens (metadata.py parse_token)
        self._token = Secret(token if token is not None else secrets.token_hex(24))
        self._host = host
        self._port = port
        self.dataset: EmulatedDataset = build_dataset(release_path, edits, names=names, options=options)
        self.faults = FaultInjector(latency_ms)
        self.stats = RequestStats()
        auth = AuthPolicy(tokens=frozenset({self._token.reveal()}), forbidden_tokens=frozenset(forbidden_tokens))
        self.app = CaveApp(self.dataset, datastacks=[datastack, *aliases], forbidden_datastacks=forbidden_datastacks,
                           pcg_table=pcg_table, aligned_volume=aligned_volume, row_limit=row_limit, auth=auth,
                           faults=self.faults, stats=self.stats)
        self.app.live_allowed = bool(live_allowed)
        from .meshes import MESH_LAYOUTS

        if mesh_layout not in MESH_LAYOUTS:
            raise InvalidArgumentError(f"mesh_layout must be one of {MESH_LAYOUTS}, got {mesh_layout!r}")
        self.app.meshes.layout = mesh_layout
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> CaveEmulator:
        """Bind and serve in a background thread (idempotent)."""
        if self._server is None:
            self._server = EmulatorHTTPServer((self._host, self._port), self.app)
            self._port = self._server.server_address[1]
            self.app.base_url = self.url
            self._thread = self._server.serve_in_thread()
            logger.info("CAVE emulator for %s listening on %s", self.dataset.release.path, self.url)
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
            self._thread = None

    def __enter__(self) -> CaveEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.url if self._server is not None else "stopped"
        return f"CaveEmulator(release={str(self.dataset.release.path)!r}, datastack={self.datastack!r}, {state})"

    # --- what clients need ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8123`` (the port is known once started)."""
        return f"http://{self._host}:{self._port}"

    @property
    def datastack(self) -> str:
        """The primary datastack name."""
        return self.app.datastacks[0]

    @property
    def datastacks(self) -> list[str]:
        """Every datastack name served (primary first)."""
        return list(self.app.datastacks)

    @property
    def token(self) -> str:
        """The accepted token (pass it to clients; it is not shown in ``repr`` or logs)."""
        return self._token.reveal()

    @property
    def versions(self) -> tuple[VersionSpec, ...]:
        """All materialization versions (expired ones have ``valid=False``)."""
        return self.dataset.script.versions

    @property
    def valid_versions(self) -> list[int]:
        """Version numbers listed without ``expired=True``."""
        return self.dataset.valid_versions()

    def timestamp(self, version: int) -> dt.datetime:
        """A version's ``time_stamp`` as an aware UTC datetime."""
        try:
            spec = self.dataset.versions[version]
        except KeyError:
            raise InvalidArgumentError(f"version {version!r} does not exist; versions are "
                                       f"{sorted(self.dataset.versions)}") from None
        return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=spec.time_stamp)

    @property
    def labels(self) -> dict[str, int]:
        """Root ids of the labelled outputs of the edit script's operations."""
        return dict(self.dataset.history.labels)

    @property
    def row_limit(self) -> int:
        """``QUERY_LIMIT_SIZE`` (changeable at runtime)."""
        return self.app.row_limit

    @row_limit.setter
    def row_limit(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgumentError(f"row_limit must be a positive integer, got {value!r}")
        self.app.row_limit = value

    def describe(self) -> dict[str, Any]:
        """Versions, concrete operations (input/output root ids) and table descriptions."""
        return {"url": self.url, "datastacks": self.datastacks, **self.dataset.describe()}

    def write_client_home(self, home: str | os.PathLike) -> Path:
        """Write caveclient's server map and token files for every served datastack under ``home``.

        See :mod:`.home`; then run fafbseg with ``HOME=home``
        (:func:`~.home.client_environment` or :func:`~.home.use_client_home`).
        """
        if self._server is None:
            raise InvalidArgumentError("start the emulator first: the URL (port) is not known yet")
        return write_client_home(home, self.url, self.token, self.datastacks + sorted(self.app.forbidden))
