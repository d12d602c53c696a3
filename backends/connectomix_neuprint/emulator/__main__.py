"""Command line: serve release folders as a local neuPrint server until Ctrl-C.

    python -m connectomix_neuprint.emulator --release PATH [--release NAME=PATH ...]
        [--port N] [--token T] [--dataset NAME] [--latency-ms N] [--query-timeout S]
        [--expired-token T ...] [--forbidden-token DATASET=T ...] [--threshold X]
        [--fail-next N] [--fail-status S] [--reset-next N] [--stall-next N] [--stall-seconds S]
        [--timeout-next N] [--buffer-pool-mb MB] [--verbose]

The token is ``--token``, else ``$NEUPRINT_APPLICATION_CREDENTIALS`` (which
neuprint-python reads too), else a random one written to a file readable only
by you (its path is printed; the token itself is never printed or logged).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path

from connectomix.errors import ConnectomixError

from .server import SERVER_VERSION, NeuprintEmulator

TOKEN_ENV = "NEUPRINT_APPLICATION_CREDENTIALS"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m connectomix_neuprint.emulator",
        description="Serve connectomix release folders as a local neuPrint server (HTTPS on 127.0.0.1).")
    p.add_argument("--release", action="append", required=True, metavar="[NAME=]PATH",
                   help="release folder; repeat as NAME=PATH to serve several datasets")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    p.add_argument("--token", help=f"accepted token (default: ${TOKEN_ENV}, else a random one)")
    p.add_argument("--dataset", help="dataset name for a single release, e.g. hemibrain:v1.2.1 "
                                     "(default: <manifest name>:<version>)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    p.add_argument("--query-timeout", type=float, default=None, metavar="S",
                   help="server-side query time limit in seconds (neuPrint's 'Timeout experienced' error)")
    p.add_argument("--expired-token", action="append", default=[], metavar="T",
                   help="a token to reject with 401 like an expired one (repeatable)")
    p.add_argument("--forbidden-token", action="append", default=[], metavar="DATASET=T",
                   help="a valid token that gets 403 on DATASET (repeatable)")
    p.add_argument("--fail-next", type=int, default=0, metavar="N",
                   help="the first N requests fail with --fail-status (faults apply in this order)")
    p.add_argument("--fail-status", type=int, default=503, help="status of --fail-next failures (default 503)")
    p.add_argument("--reset-next", type=int, default=0, metavar="N",
                   help="then N responses are cut off half-way by a TCP reset")
    p.add_argument("--stall-next", type=int, default=0, metavar="N",
                   help="then N responses stop half-way for --stall-seconds")
    p.add_argument("--stall-seconds", type=float, default=5.0, help="length of a stall (default 5)")
    p.add_argument("--timeout-next", type=int, default=0, metavar="N",
                   help="then N Cypher queries answer neuPrint's 'Timeout experienced' error")
    p.add_argument("--threshold", type=float, default=None,
                   help=":Meta.postHighAccuracyThreshold, neuprint-python's default synapse confidence filter; "
                        "weights of pairs with synapses count the PSDs at or above it, as FlyEM's builder does "
                        "(default: the manifest's recommended score, release weights kept)")
    p.add_argument("--position-units", choices=("voxel", "nm"), default="voxel",
                   help="serve positions in voxels (default) or in nm with :Meta.voxelSize still set, "
                        "like the FlyWire/BANC mirrors")
    p.add_argument("--buffer-pool-mb", type=int, default=None, metavar="MB",
                   help="Kuzu buffer pool per dataset (default: sized to the release)")
    p.add_argument("--verbose", "-v", action="store_true", help="log every request (never tokens)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    if len(args.release) == 1 and "=" not in args.release[0]:
        release: object = args.release[0]
    else:
        if args.dataset:
            print("--dataset applies to a single --release PATH; use NAME=PATH for several", file=sys.stderr)
            return 2
        release = {}
        for item in args.release:
            name, sep, path = item.partition("=")
            if not sep:
                print(f"--release {item!r}: with several releases each must be NAME=PATH", file=sys.stderr)
                return 2
            release[name] = path
    forbidden: dict[str, list[str]] = {}
    for item in args.forbidden_token:
        ds, sep, tok = item.partition("=")
        if not sep:
            print(f"--forbidden-token expects DATASET=TOKEN, got {item!r}", file=sys.stderr)
            return 2
        forbidden.setdefault(ds, []).append(tok)

    token = args.token or os.environ.get(TOKEN_ENV)
    token_file = None
    if not token:
        token = secrets.token_urlsafe(24)
        fd, token_file = tempfile.mkstemp(prefix="neuprint-emulator-token-", text=True)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        os.chmod(token_file, 0o600)

    emu = NeuprintEmulator(release, token=token, dataset=args.dataset, port=args.port,
                           expired_tokens=args.expired_token, forbidden_tokens=forbidden,
                           latency_ms=args.latency_ms, query_timeout_s=args.query_timeout,
                           post_high_accuracy_threshold=args.threshold, buffer_pool_mb=args.buffer_pool_mb,
                           position_units=args.position_units)
    try:
        emu.start()
    except (ConnectomixError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.fail_next:
        emu.faults.fail_next(args.fail_next, status=args.fail_status)
    if args.reset_next:
        emu.faults.reset_next(args.reset_next)
    if args.stall_next:
        emu.faults.stall_next(args.stall_next, seconds=args.stall_seconds)
    if args.timeout_next:
        emu.faults.timeout_next(args.timeout_next)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    token_hint = (f"token file: {token_file}  (export {TOKEN_ENV}=$(cat {token_file}))" if token_file
                  else ("token: the one you gave" if args.token else f"token: ${TOKEN_ENV}"))
    print(f"neuPrint emulator (neuPrintHTTP {SERVER_VERSION} API) serving {', '.join(emu.datasets)}")
    print(f"url:       {emu.url}")
    print(f"cert:      {emu.cert_path}   (export REQUESTS_CA_BUNDLE={emu.cert_path}, or verify=False)")
    print(token_hint)
    print(f"python:    neuprint.Client({emu.url!r}, dataset={emu.datasets[0]!r}, verify={str(emu.cert_path)!r})")
    for name in emu.datasets:
        if emu.segmentation_source(name):
            print(f"meshes:    {emu.segmentation_source(name)}  ({name}; cloud-volume, navis fetch_mesh_neuron)")
    print("Ctrl-C to stop.", flush=True)
    try:
        stop.wait()
    finally:
        emu.stop()
        if token_file:
            Path(token_file).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
