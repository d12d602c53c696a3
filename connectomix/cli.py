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
import inspect
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import __version__
from .criteria import NeuronCriteria
from .config import redact
from .errors import ConnectomixError, InvalidArgumentError

__all__ = ["main", "parse_neuron_spec"]

_SPEC = re.compile(r"^(type|instance|status)(=|~)(.+)$")
_ASCII_DIGITS = re.compile(r"[0-9]+")
_ASCII_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


class _UsageError(ConnectomixError):
    """A command line argparse cannot read (reported in one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one-line :class:`_UsageError` s instead of usage + exit."""

    def error(self, message: str):
        raise _UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _count(text: str) -> int:
    """argparse type: a non-negative integer written in ASCII digits ('１２' or '1_0' are refused)."""
    if not _ASCII_DIGITS.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a non-negative integer in ASCII digits; got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _number(text: str) -> float:
    """argparse type: a finite decimal number in ASCII ('nan', 'inf' and '０.５' are refused)."""
    if not _ASCII_NUMBER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a finite number such as 0.9; got {text!r}")
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number such as 0.9; got {text!r}")
    return value


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
    if not all(_ASCII_DIGITS.fullmatch(p) for p in parts):
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
    path = _output_path(output)
    try:
        if path.suffix.lower() == ".parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write output {output!r}: {exc.strerror or exc}") from None
    print(f"wrote {len(df)} rows to {path}", file=sys.stderr)


def _output_path(output: str | None) -> Path | None:
    """Check ``-o FILE`` before any query runs: a known suffix, in an existing folder, not a folder itself."""
    if output is None:
        return None
    path = Path(output)
    if path.suffix.lower() not in (".parquet", ".csv") and not path.name.lower().endswith(".csv.gz"):
        raise InvalidArgumentError(f"output {output!r}: use a .csv, .csv.gz or .parquet file name")
    if path.is_dir():
        raise InvalidArgumentError(f"output {output!r} is a folder; give a file name inside it")
    if not path.parent.is_dir():
        raise InvalidArgumentError(f"output {output!r}: folder {str(path.parent)!r} does not exist; create it first")
    return path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset name (see 'connectomix datasets') or URI")
    p.add_argument("-o", "--output", help="write to a .csv/.csv.gz/.parquet file instead of printing")
    p.add_argument("--max-rows", type=_positive, default=40, help="rows to print (default 40)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="connectomix", description="One interface to connectome datasets.")
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
    p.add_argument("--min-pre", type=_count, default=0)
    p.add_argument("--min-post", type=_count, default=0)
    p.add_argument("--roi-counts", action="store_true", help="output the per-ROI counts instead")

    p = sub.add_parser("connectivity", help="neuron-to-neuron weights")
    _common(p)
    p.add_argument("--sources", help="ids '1,2', 'type=NAME' or 'type~REGEX'")
    p.add_argument("--targets", help="ids '1,2', 'type=NAME' or 'type~REGEX'")
    p.add_argument("--by-roi", action="store_true")
    p.add_argument("--rois", nargs="+")
    p.add_argument("--min-weight", type=_count, default=1)
    p.add_argument("--include-autapses", action="store_true")

    p = sub.add_parser("synapses", help="synapse-level connections (nm)")
    _common(p)
    p.add_argument("neurons", help="ids '1,2', 'type=NAME' or 'type~REGEX'")
    p.add_argument("--no-pre", action="store_true", help="skip synapses where the neurons are presynaptic")
    p.add_argument("--no-post", action="store_true", help="skip synapses where the neurons are postsynaptic")
    p.add_argument("--min-score", type=_number)
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
    files = p.add_argument_group(
        "input files", "name an input file when the folder's names differ from the defaults (a path, or a name "
        "inside SOURCE); each option applies to the formats listed")
    for flag, formats, text in _CONVERT_FILES:
        files.add_argument(flag, metavar="FILE", help=f"{formats}: {text}")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--check", action="store_true", help="only validate the existing release folder DEST")
    p.add_argument("--deep", action="store_true", help="with --check: check every row, not just metadata")

    p = sub.add_parser("datasets", help="list configured and built-in datasets")
    p.add_argument("--long", action="store_true",
                   help="describe each dataset: backend, server, version, units, score and threshold, "
                   "annotation source (from the dataset catalogue; local datasets are opened)")
    sub.add_parser("backends", help="list installed backends")
    sub.add_parser("config-path", help="print where the TOML config is read from")
    p = sub.add_parser("cache", help="show or clear the on-disk result cache")
    p.add_argument("action", choices=["info", "clear"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``connectomix`` command; returns the exit status.

    Errors are one line on stderr (tokens redacted) with status 2; ``--help``
    and ``--version`` return 0. Nothing is raised, not even ``SystemExit``.
    """
    try:
        args = _build_parser().parse_args(argv)
        if getattr(args, "output", None) is not None:
            _output_path(args.output)  # refuse a bad -o before running the query
        return _COMMANDS[args.command](args) or 0
    except ConnectomixError as exc:
        print(f"connectomix: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # e.g. piped into head
        return 0
    except Exception as exc:  # a bug: still one line, unless the traceback is asked for
        if os.environ.get("CONNECTOMIX_DEBUG"):
            raise
        print(f"connectomix: internal error (a bug; set CONNECTOMIX_DEBUG=1 for the traceback): "
              f"{type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line, tokens redacted."""
    return re.sub(r"\s*\n\s*", " ", redact(str(exc))).strip()


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


#: ``connectomix convert`` options naming input files: (flag, formats, help); the importer keyword is the flag's name.
_CONVERT_FILES = (
    ("--neurons", "neuprint-csv, flywire",
     "neuron table (default traced-neurons.csv / neurons.csv / body-annotations-*.feather; flywire neurons.csv.gz)"),
    ("--connections", "neuprint-csv, flywire",
     "connection weights (default traced-total-connections.csv, traced-connections.csv (MANC), the complete "
     "connectome-weights-*.feather, never a -traced-only one on its own; flywire connections_no_threshold.csv.gz / "
     "connections.csv.gz / proofread_connections_*.feather)"),
    ("--neurotransmitters", "neuprint-csv",
     "per-body transmitter predictions (default body-neurotransmitters-*.feather; predicted_nt becomes nt)"),
    ("--roi-connections", "neuprint-csv",
     "per-ROI weights (default traced-roi-connections.csv / traced-connections-per-roi.csv)"),
    ("--synapses", "neuprint-csv, flywire",
     "synapse table (default neuprint-csv: the complete syn-partners-*.feather; flywire: flywire_synapses_*.feather, "
     "fafb_v*_princeton_synapse_table.csv.gz or synapse_coordinates.csv.gz)"),
    ("--classification", "flywire", "classification.csv.gz (flow, super_class, class, side, ...)"),
    ("--cell-types", "flywire", "consolidated_cell_types.csv.gz / cell_types.csv.gz (primary_type)"),
    ("--names", "flywire", "names.csv.gz (name, group)"),
    ("--proofread-ids", "flywire", "proofread_root_ids_*.npy"),
)


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
    accepted = inspect.signature(IMPORTERS[args.format]).parameters
    for flag, _, _ in _CONVERT_FILES:
        key = flag[2:].replace("-", "_")
        value = getattr(args, key)
        if value is not None:
            if key not in accepted:
                valid = [f for f, _, _ in _CONVERT_FILES if f[2:].replace("-", "_") in accepted]
                raise InvalidArgumentError(f"{flag} does not apply to the {args.format} format; its file options "
                                           f"are {', '.join(valid)}")
            options[key] = value
    dest = IMPORTERS[args.format](Path(args.source), Path(args.dest), name=args.name,
                                  version=args.release_version, overwrite=args.overwrite, **options)
    report = validate_release(dest)
    rows = ", ".join(f"{k}: {v:,}" for k, v in report["rows"].items())
    print(f"wrote release folder {dest} ({rows})")
    print(report)
    uri = Path(dest).resolve().as_uri().replace("file://", "release://", 1)  # percent-encoded like the path
    print(f"open it with connectomix.open({uri!r})")
    return 0


def _cmd_datasets(args) -> None:
    import shutil
    import textwrap

    from . import catalogue, datasets
    from .config import load_config

    entries = catalogue.load().datasets if args.long else {}
    configured = set(load_config()) if args.long else set()
    width = max(60, shutil.get_terminal_size((80, 24)).columns)
    for name, uri in sorted(datasets().items()):
        line = f"{name:20s} {redact(uri)}"
        print(line if not args.long or len(line) <= width else f"{name}\n    {redact(uri)}")
        if name in configured:
            print("    from the config file" + ("; it overrides the catalogue entry" if name in entries else ""))
        elif name in entries:
            print("\n".join(entries[name].summary_lines(width)))
        if args.long and uri.startswith("release://"):
            with _open(name) as ds:
                print(textwrap.fill(ds.info.description, width, initial_indent="    ", subsequent_indent="        "))


def _cmd_backends(args) -> None:
    from . import backends

    for name, info in sorted(backends().items()):
        schemes = ", ".join(s + "://" for s in info.schemes)
        print(f"{name:10s} {schemes:14s} {info.description}")


def _cmd_config_path(args) -> None:
    from .config import config_path

    print(config_path())


def _cmd_cache(args) -> None:
    import warnings

    from .cache import ResultCache
    from .errors import CacheWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)  # said below, as the command's error
        cache = ResultCache()
    if not cache.usable:
        raise ConnectomixError(f"the result cache at {str(cache.directory)!r} {cache.problem}; set "
                               "$CONNECTOMIX_CACHE_DIR to a writable folder, or delete this one")
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
