"""The ``connectomix`` command line.

Examples
--------
    connectomix demo                                   # the embedded sample, offline
    connectomix neurons sample --type DA1_lPN
    connectomix connectivity sample --sources type=DA1_lPN --min-weight 5 -o edges.csv
    connectomix synapses sample 1734350788 --min-score 0.9 -o syn.parquet
    connectomix convert neuprint-csv exported-traced-adjacencies-v1.2/ hemibrain-release/
    connectomix datasets
    connectomix backends
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import __version__
from .criteria import NeuronCriteria
from .errors import ConnectomixError, InvalidArgumentError

__all__ = ["main", "parse_neuron_spec"]

_SPEC = re.compile(r"^(type|instance|status)(=|~)(.+)$")


def parse_neuron_spec(spec: str) -> NeuronCriteria:
    """Parse a command-line neuron selection.

    ``"1,2,3"`` are ids; ``"type=DA1_lPN"`` matches exactly; ``"type~DA1_.*"``
    is a regular expression (also ``instance``/``status``).

    Examples
    --------
    >>> parse_neuron_spec("1734350788,754534424").ids
    (754534424, 1734350788)
    >>> parse_neuron_spec("type~DA1_.*")
    NeuronCriteria(type=('DA1_.*',), regex=True)
    """
    spec = spec.strip()
    m = _SPEC.match(spec)
    if m:
        field, op, value = m.groups()
        if field == "status" and op == "~":
            raise InvalidArgumentError("status only matches exactly: use status=VALUE")
        return NeuronCriteria(**{field: value}, regex=(op == "~"))
    parts = [p for p in re.split(r"[,\s]+", spec) if p]
    if not parts:
        raise InvalidArgumentError("empty neuron selection; give ids like '1,2,3' or 'type=NAME' or 'type~REGEX'")
    if not all(p.isdigit() for p in parts):
        raise InvalidArgumentError(
            f"cannot read neuron selection {spec!r}: give ids like '1,2,3', 'type=NAME', or 'type~REGEX'"
        )
    return NeuronCriteria(ids=parts)


def _write(df: pd.DataFrame, output: str | None, max_rows: int) -> None:
    if output is None:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(df.to_string(index=False, max_rows=max_rows) if len(df) else "(no rows)")
            if len(df) > max_rows:
                print(f"... {len(df)} rows in total; use -o FILE to save them all")
        return
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif suffix in (".csv", ".gz"):
        df.to_csv(path, index=False)
    else:
        raise InvalidArgumentError(f"output {output!r}: use a .csv, .csv.gz or .parquet file name")
    print(f"wrote {len(df)} rows to {path}", file=sys.stderr)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset name (see 'connectomix datasets') or URI")
    p.add_argument("-o", "--output", help="write to a .csv/.csv.gz/.parquet file instead of printing")
    p.add_argument("--max-rows", type=int, default=40, help="rows to print (default 40)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connectomix", description="One interface to connectome datasets.")
    parser.add_argument("--version", action="version", version=f"connectomix {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="tour of a dataset (default: the embedded sample)")
    p.add_argument("dataset", nargs="?", default="sample")
    p.add_argument("--type", default="DA1_lPN", help="cell type to centre the tour on (default DA1_lPN)")

    p = sub.add_parser("neurons", help="search neurons")
    _common(p)
    p.add_argument("--ids", help="comma-separated ids")
    p.add_argument("--type")
    p.add_argument("--instance")
    p.add_argument("--regex", action="store_true", help="type/instance are regular expressions")
    p.add_argument("--status")
    p.add_argument("--rois", nargs="+", help="neurons with synapses in these ROIs")
    p.add_argument("--min-pre", type=int, default=0)
    p.add_argument("--min-post", type=int, default=0)
    p.add_argument("--roi-counts", action="store_true", help="output the per-ROI counts instead")

    p = sub.add_parser("connectivity", help="neuron-to-neuron weights")
    _common(p)
    p.add_argument("--sources", help="ids '1,2', 'type=NAME' or 'type~REGEX'")
    p.add_argument("--targets", help="ids '1,2', 'type=NAME' or 'type~REGEX'")
    p.add_argument("--by-roi", action="store_true")
    p.add_argument("--rois", nargs="+")
    p.add_argument("--min-weight", type=int, default=1)
    p.add_argument("--include-autapses", action="store_true")

    p = sub.add_parser("synapses", help="synapse-level connections (nm)")
    _common(p)
    p.add_argument("neurons", help="ids '1,2', 'type=NAME' or 'type~REGEX'")
    p.add_argument("--no-pre", action="store_true", help="skip synapses where the neurons are presynaptic")
    p.add_argument("--no-post", action="store_true", help="skip synapses where the neurons are postsynaptic")
    p.add_argument("--min-score", type=float)
    p.add_argument("--rois", nargs="+")
    p.add_argument("--include-autapses", action="store_true")

    p = sub.add_parser("convert", help="convert public release files to a connectomix release folder")
    p.add_argument("format", help="source format, e.g. neuprint-csv or flywire")
    p.add_argument("source", help="folder (or file) with the downloaded release files")
    p.add_argument("dest", help="release folder to create")
    p.add_argument("--name")
    p.add_argument("--release-version", dest="release_version")
    p.add_argument("--primary-rois", help="comma-separated list, or a file with one ROI per line")
    p.add_argument("--coordinate-unit", choices=["auto", "nm", "voxel"], help="flywire: unit of the synapse positions")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--check", action="store_true", help="only validate the existing release folder DEST")
    p.add_argument("--deep", action="store_true", help="with --check: check every row, not just metadata")

    p = sub.add_parser("datasets", help="list configured and built-in datasets")
    p.add_argument("--long", action="store_true", help="also open each local dataset and describe it")
    sub.add_parser("backends", help="list installed backends")
    sub.add_parser("config-path", help="print where the TOML config is read from")
    p = sub.add_parser("cache", help="show or clear the on-disk result cache")
    p.add_argument("action", choices=["info", "clear"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``connectomix`` command; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args) or 0
    except ConnectomixError as exc:
        print(f"connectomix: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head
        return 0


def _open(name: str):
    from .dataset import open as open_dataset

    return open_dataset(name)


def _cmd_neurons(args) -> None:
    crit = NeuronCriteria(
        ids=args.ids.split(",") if args.ids else None, type=args.type, instance=args.instance, regex=args.regex,
        status=args.status, rois=args.rois, min_pre=args.min_pre, min_post=args.min_post,
    )
    with _open(args.dataset) as ds:
        neurons, roi_counts = ds.fetch_neurons(crit, omit_rois=not args.roi_counts)
    _write(roi_counts if args.roi_counts else neurons, args.output, args.max_rows)


def _cmd_connectivity(args) -> None:
    src = parse_neuron_spec(args.sources) if args.sources else None
    tgt = parse_neuron_spec(args.targets) if args.targets else None
    with _open(args.dataset) as ds:
        df = ds.get_connectivity(src, tgt, by_roi=args.by_roi, rois=args.rois, min_weight=args.min_weight,
                                 include_autapses=args.include_autapses)
    _write(df, args.output, args.max_rows)


def _cmd_synapses(args) -> None:
    with _open(args.dataset) as ds:
        df = ds.get_synapses(parse_neuron_spec(args.neurons), pre=not args.no_pre, post=not args.no_post,
                             min_score=args.min_score, rois=args.rois, include_autapses=args.include_autapses)
    _write(df, args.output, args.max_rows)


def _cmd_convert(args) -> int:
    from connectomix_release.importers import IMPORTERS
    from connectomix_release.writer import validate_release

    if args.check:
        report = validate_release(args.dest, deep=args.deep)
        print(report)
        return 0 if report.ok else 2
    if args.format not in IMPORTERS:
        raise InvalidArgumentError(f"unknown format {args.format!r}; valid formats: {sorted(IMPORTERS)}")
    options = {}
    if args.coordinate_unit:
        if args.format != "flywire":
            raise InvalidArgumentError("--coordinate-unit applies to the flywire format only")
        options["coordinate_unit"] = args.coordinate_unit
    if args.primary_rois:
        options["primary_rois"] = args.primary_rois  # a list, a file or comma-separated; the importer parses it
    dest = IMPORTERS[args.format](Path(args.source), Path(args.dest), name=args.name,
                                  version=args.release_version, overwrite=args.overwrite, **options)
    report = validate_release(dest)
    rows = ", ".join(f"{k}: {v:,}" for k, v in report["rows"].items())
    print(f"wrote release folder {dest} ({rows})")
    print(report)
    print(f"open it with connectomix.open('release://{Path(dest).resolve()}')")
    return 0


def _cmd_datasets(args) -> None:
    from . import datasets

    for name, uri in sorted(datasets().items()):
        print(f"{name:20s} {uri}")
        if args.long and uri.startswith("release://"):
            with _open(name) as ds:
                print(f"{'':20s} {ds.info.description}")


def _cmd_backends(args) -> None:
    from . import backends

    for name, info in sorted(backends().items()):
        schemes = ", ".join(s + "://" for s in info.schemes)
        print(f"{name:10s} {schemes:14s} {info.description}")


def _cmd_config_path(args) -> None:
    from .config import config_path

    print(config_path())


def _cmd_cache(args) -> None:
    from .cache import ResultCache

    cache = ResultCache()
    if args.action == "clear":
        print(f"removed {cache.clear()} cached result(s) from {cache.directory}")
    else:
        print(f"{cache.directory}: {len(cache)} result(s), {cache.volume() / 1e6:.1f} MB")


def _cmd_demo(args) -> None:
    from .demo import run_demo

    run_demo(args.dataset, args.type)


_COMMANDS = {
    "demo": _cmd_demo,
    "neurons": _cmd_neurons,
    "connectivity": _cmd_connectivity,
    "synapses": _cmd_synapses,
    "convert": _cmd_convert,
    "datasets": _cmd_datasets,
    "backends": _cmd_backends,
    "config-path": _cmd_config_path,
    "cache": _cmd_cache,
}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
