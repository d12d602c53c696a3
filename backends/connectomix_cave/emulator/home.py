"""Point unmodified caveclient/fafbseg at an emulator through a (temporary) HOME directory.

fafbseg builds its client itself, as ``CAVEclient(datastack, auth_token=token)``:

* the server comes from ``~/.cloudvolume/secrets/cave_datastack_to_server_map.json``
  (caveclient's datastack -> server cache), so that file maps the datastack
  names to the emulator's URL;
* the token comes from cloud-volume's ``cave_credentials("global.daf-apis.com")``,
  i.e. ``~/.cloudvolume/secrets/global.daf-apis.com-cave-secret.json``.

:func:`write_client_home` writes both (plus the generic ``cave-secret.json``,
so ``CAVEclient(datastack)`` without a token works too). cloud-volume reads
``HOME`` once, at import, so a *fresh process* with :func:`client_environment`
is the reliable way; :func:`use_client_home` switches an already running
process over (it resets the caches cloud-volume and fafbseg keep).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

__all__ = ["write_client_home", "client_environment", "use_client_home", "FAFBSEG_TOKEN_DOMAIN"]

#: The domain fafbseg asks cloud-volume for a CAVE token first.
FAFBSEG_TOKEN_DOMAIN = "global.daf-apis.com"


def _secrets_dir(home: Path) -> Path:
    return home / ".cloudvolume" / "secrets"


def write_client_home(home: str | os.PathLike, url: str, token: str, datastacks: Iterable[str]) -> Path:
    """Write caveclient's datastack->server map and the CAVE token files under ``home``.

    Parameters
    ----------
    home
        A directory to use as ``HOME`` (created if missing); never the user's real home in tests.
    url
        The emulator's base URL, e.g. ``http://127.0.0.1:8123``.
    token
        The emulator token (written with file mode 0600).
    datastacks
        Datastack names to route to ``url`` (e.g. ``["flywire_fafb_public"]``).

    Returns
    -------
    Path
        The secrets directory (``home/.cloudvolume/secrets``).
    """
    secrets = _secrets_dir(Path(home))
    secrets.mkdir(parents=True, exist_ok=True)
    map_path = secrets / "cave_datastack_to_server_map.json"
    mapping = {}
    if map_path.exists():
        with contextlib.suppress(ValueError):
            mapping = json.loads(map_path.read_text(encoding="utf-8"))
    mapping.update({ds: url for ds in datastacks})
    map_path.write_text(json.dumps(mapping), encoding="utf-8")
    netloc = url.split("://", 1)[-1].rstrip("/")
    for name in (f"{FAFBSEG_TOKEN_DOMAIN}-cave-secret.json", "cave-secret.json", f"{netloc}-cave-secret.json"):
        path = secrets / name
        try:
            path.write_text(json.dumps({"token": token}), encoding="utf-8")
        except OSError:  # "host:port" is not a valid file name everywhere (Windows); the other files suffice
            continue
        path.chmod(0o600)
    return secrets


def client_environment(home: str | os.PathLike, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables for a subprocess that should see ``home`` as its HOME.

    ``CLOUD_VOLUME_DIR`` is set explicitly (cloud-volume prefers it over HOME),
    and ``FLYWIRE_DEFAULT_DATASET`` is dropped so fafbseg uses ``"public"``.
    """
    env = dict(os.environ if base is None else base)
    env["HOME"] = str(home)
    env["CLOUD_VOLUME_DIR"] = str(Path(home) / ".cloudvolume")
    env.pop("FLYWIRE_DEFAULT_DATASET", None)
    return env


@contextlib.contextmanager
def use_client_home(home: str | os.PathLike) -> Iterator[Path]:
    """Make this process's caveclient, cloud-volume and fafbseg use ``home`` until the block ends.

    Sets ``HOME``, repoints cloud-volume's secrets directory (read once at its
    import) and clears cloud-volume's credential cache and fafbseg's client
    cache before and after. Not thread-safe: it changes process-wide state.
    """
    home = Path(home)
    saved_env = {k: os.environ.get(k) for k in ("HOME", "CLOUD_VOLUME_DIR")}
    secrets_mod = sys.modules.get("cloudvolume.secrets")
    if secrets_mod is None:
        import cloudvolume.secrets as secrets_mod  # noqa: PLC0415 - heavy import, only when needed
    saved_cv = (secrets_mod.HOME, secrets_mod.CLOUD_VOLUME_DIR)

    def reset_caches() -> None:
        secrets_mod.CAVE_CREDENTIALS_CACHE.clear()
        fafbseg_utils = sys.modules.get("fafbseg.flywire.utils")
        if fafbseg_utils is not None:
            fafbseg_utils.cave_clients.clear()

    os.environ["HOME"] = str(home)
    os.environ["CLOUD_VOLUME_DIR"] = str(home / ".cloudvolume")
    secrets_mod.HOME = str(home)
    secrets_mod.CLOUD_VOLUME_DIR = str(home / ".cloudvolume")
    reset_caches()
    try:
        yield home
    finally:
        reset_caches()
        secrets_mod.HOME, secrets_mod.CLOUD_VOLUME_DIR = saved_cv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
