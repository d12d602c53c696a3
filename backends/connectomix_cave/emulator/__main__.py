"""Command line: ``python -m connectomix_cave.emulator --release PATH [options]``.

Prints the URL, datastack and token, then serves until interrupted (Ctrl-C).
``--write-default-edits FILE`` writes the default edit script for the release
and exits; ``--describe`` prints versions and concrete edit ids as JSON.
``--profile DATASTACK`` serves the release in the real shape of a catalogue
datastack (its name, tables, annotation shape, units and live policy; see
:func:`connectomix_cave.emulator.profile`).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence

from connectomix.errors import ConnectomixError

from .dataset import default_script_for_release
from .emulator import DEFAULT_DATASTACK, CaveEmulator
from .profiles import profile
from .release import read_release


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m connectomix_cave.emulator",
                                description="Serve a connectomix release folder as a CAVE datastack on 127.0.0.1 "
                                            "(versions after 1 follow SYNTHETIC proofreading edits).")
    p.add_argument("--release", required=True, help="release folder (connectomix_release/FORMAT.md)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--token", default=None, help="accepted token (default: random, printed at start)")
    p.add_argument("--datastack", default=DEFAULT_DATASTACK, help=f"datastack name (default {DEFAULT_DATASTACK})")
    p.add_argument("--profile", default=None, metavar="DATASTACK",
                   help="serve in the real shape of this catalogue datastack (e.g. minnie65_public); "
                        "replaces --datastack")
    p.add_argument("--alias", action="append", default=[], help="another datastack name for the same data")
    p.add_argument("--forbidden-datastack", action="append", default=[], help="a datastack name that answers 403")
    p.add_argument("--row-limit", type=int, default=200_000, help="QUERY_LIMIT_SIZE (default 200000)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    p.add_argument("--edits", default=None, help="edit script (.json/.toml); default: generated for the release")
    p.add_argument("--home", default=None,
                   help="write caveclient's server map and token files into this HOME directory (for fafbseg)")
    p.add_argument("--fail-next", type=int, default=0, help="answer the first N requests with --fail-status")
    p.add_argument("--fail-status", type=int, default=503, help="status for --fail-next (503, 502, 504, 429, ...)")
    p.add_argument("--fail-endpoint", default=None, help="limit --fail-next to one endpoint name (or 'query')")
    p.add_argument("--write-default-edits", metavar="FILE", default=None,
                   help="write the default edit script for --release to FILE (JSON) and exit")
    p.add_argument("--describe", action="store_true", help="print versions and concrete edits as JSON and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.write_default_edits:
            path = default_script_for_release(read_release(args.release)).dump(args.write_default_edits)
            print(f"wrote the default (SYNTHETIC) edit script to {path}")
            return 0
        shape = profile(args.profile).emulator_kwargs() if args.profile else {"datastack": args.datastack}
        emu = CaveEmulator(args.release, edits=args.edits, port=args.port, host=args.host, token=args.token,
                           aliases=args.alias, forbidden_datastacks=args.forbidden_datastack,
                           row_limit=args.row_limit, latency_ms=args.latency_ms, **shape)
        if args.describe:
            print(json.dumps(emu.dataset.describe(), indent=2))
            return 0
        if args.fail_next:
            emu.faults.fail_next(args.fail_next, status=args.fail_status, endpoint=args.fail_endpoint)
    except ConnectomixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with emu:
        secrets_dir = emu.write_client_home(args.home) if args.home else None
        print(f"CAVE emulator serving {args.release} at {emu.url}", flush=True)
        print(f"datastack: {', '.join(emu.datastacks)}   versions: {emu.valid_versions} (expired ones with "
              f"expired=True)", flush=True)
        if args.token is None:
            print(f"token (generated): {emu.token}", flush=True)
        if secrets_dir is not None:
            print(f"client files written to {secrets_dir}; run clients with HOME={args.home}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
