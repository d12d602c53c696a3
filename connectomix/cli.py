"""The ``connectomix`` command line.

Examples
--------
    connectomix demo                                   # the embedded sample, offline
    connectomix neurons sample --type DA1_lPN
    connectomix connectivity sample --sources type=DA1_lPN --min-weight 5 -o edges.csv
    connectomix connectivity sample --sources type=DA1_lPN --by type
    connectomix synapses sample 1734350788 --min-score 0.9 -o syn.parquet
    connectomix neurons sample --rois 'AL(R),CA(R)'
    connectomix convert neuprint-csv exported-traced-adjacencies-v1.2/ hemibrain-release/
    connectomix convert --check hemibrain-release/
    connectomix datasets
    connectomix backends
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import shutil
import sys
import textwrap
import warnings
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


#: Output formats by file-name ending (checked longest first, case-insensitively).
_FORMATS = {
    ".csv": "csv", ".csv.gz": "csv", ".tsv": "tsv", ".tsv.gz": "tsv",
    ".json": "json", ".json.gz": "json", ".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".parquet": "parquet",
}
#: Widest a printed text value gets before it is cut with "..." (the file output keeps it whole).
_MAX_COLWIDTH = 24


def _format_of(output: str) -> str:
    """The output format named by the file's ending, or a usage error naming the valid endings."""
    name = Path(output).name.lower()
    for ending in sorted(_FORMATS, key=len, reverse=True):
        if name.endswith(ending) and len(name) > len(ending):
            return _FORMATS[ending]
    raise InvalidArgumentError(f"output {output!r}: the format comes from the file name; use one ending in "
                               f"{', '.join(_FORMATS)}")


def _write(df: pd.DataFrame, output: str | None, max_rows: int) -> None:
    if output is None:
        _print_table(df, max_rows)
        return
    path = _output_path(output)
    fmt = _format_of(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            df.to_parquet(path, index=False)
        elif fmt in ("csv", "tsv"):
            df.to_csv(path, index=False, sep="," if fmt == "csv" else "\t")
        else:  # json: a list of row objects; jsonl: one object per line (<NA> is null)
            df.to_json(path, orient="records", lines=fmt == "jsonl", force_ascii=False)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write output {output!r}: {exc.strerror or exc}") from None
    print(f"wrote {len(df)} rows to {path}", file=sys.stderr)


def _print_table(df: pd.DataFrame, max_rows: int) -> None:
    """Print ``df`` within the terminal's width: long text is cut, columns that do not fit wrap below."""
    if not len(df):
        print("(no rows)")
        return
    width = max(40, shutil.get_terminal_size((80, 24)).columns)
    text = df.to_string(index=False, max_rows=max_rows, max_colwidth=_MAX_COLWIDTH, line_width=width)
    print(text)
    if len(df) > max_rows:
        print(textwrap.fill(f"... {len(df)} rows in total; use -o FILE to save them all", width))
    elif "\n\n" in text:
        print(textwrap.fill(f"({len(df.columns)} columns wrapped to {width} characters; use -o FILE for one "
                            "row per line)", width))


def _output_path(output: str | None) -> Path | None:
    """Check ``-o FILE`` before any query runs: a known ending, not a folder, folders creatable.

    Missing folders on the way are created when the table is written (like ``mkdir -p``).
    """
    if output is None:
        return None
    path = Path(output)
    if path.is_dir():
        raise InvalidArgumentError(f"output {output!r} is a folder; give a file name inside it")
    _format_of(output)
    for parent in path.parents:  # the nearest existing folder on the way must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise InvalidArgumentError(f"output {output!r}: {str(parent)!r} is a file, not a folder")
            break
    return path


def _rois(text: str) -> list[str]:
    """argparse type: ``--rois`` takes one comma-separated list (repeat the option for more)."""
    names = [r.strip() for r in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected ROI names separated by commas, e.g. 'AL(R),CA(R)'; got {text!r}")
    return names


def _add_rois(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--rois", type=_rois, action="append", metavar="ROI[,ROI...]",
                   help=f"{text}; comma-separated, or repeat the option (e.g. --rois 'AL(R),CA(R)'). "
                   "Quote names with brackets in the shell")


def _roi_arg(values: list[list[str]] | None) -> list[str] | None:
    return None if values is None else [r for group in values for r in group]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset name (see 'connectomix datasets') or URI")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the whole table to FILE instead of printing; the format comes from the ending: "
                   f"{', '.join(_FORMATS)}; missing folders are created")
    p.add_argument("--max-rows", type=_positive, default=40, help="rows to print (default 40)")


def _partner_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--partner-types", action=argparse.BooleanOptionalAction, default=True,
                   help="add the partners' pre_type, pre_instance, post_type, post_instance columns "
                   "(default: on; --no-partner-types for ids only)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="connectomix", description="One interface to connectome datasets.")
    parser.add_argument("--version", action="version", version=f"connectomix {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do; 'connectomix COMMAND --help' describes each")

    p = sub.add_parser("demo", help="tour of a dataset (default: the embedded sample)")
    p.add_argument("dataset", nargs="?", default="sample", help="dataset name or URI (default: sample)")
    p.add_argument("--type", default="DA1_lPN", help="cell type to centre the tour on (default DA1_lPN)")

    p = sub.add_parser("neurons", help="search neurons")
    _common(p)
    p.add_argument("--ids", help="comma-separated ids, e.g. 1734350788,754534424")
    p.add_argument("--type", help="cell type, matched exactly (with --regex: a regular expression)")
    p.add_argument("--instance", help="instance name, matched exactly (with --regex: a regular expression)")
    p.add_argument("--regex", action="store_true", help="type/instance are regular expressions (full match)")
    p.add_argument("--status", help="proofreading status, matched exactly, e.g. Traced")
    _add_rois(p, "neurons with synapses in any of these ROIs")
    p.add_argument("--min-pre", type=_count, default=0, help="at least this many presynaptic sites (default 0)")
    p.add_argument("--min-post", type=_count, default=0, help="at least this many postsynaptic sites (default 0)")
    p.add_argument("--roi-counts", action="store_true", help="output the per-ROI counts instead")

    p = sub.add_parser("connectivity", help="neuron-to-neuron weights")
    _common(p)
    p.add_argument("--sources", help="presynaptic neurons: ids '1,2', 'type=NAME' or 'type~REGEX' (default: any)")
    p.add_argument("--targets", help="postsynaptic neurons: ids '1,2', 'type=NAME' or 'type~REGEX' (default: any)")
    p.add_argument("--by", choices=["neuron", "type"], default="neuron",
                   help="'neuron': one row per neuron pair (default); 'type': weights summed per pair of "
                   "cell types, with the neurons and pairs counted")
    p.add_argument("--by-roi", action="store_true", help="one row per pair and ROI (weights sum to the total)")
    _add_rois(p, "count only connections in these ROIs")
    p.add_argument("--min-weight", type=_count, default=1,
                   help="keep neuron pairs with at least this many connections (default 1)")
    p.add_argument("--include-autapses", action="store_true", help="keep connections of a neuron onto itself")
    _partner_option(p)

    p = sub.add_parser("synapses", help="synapse-level connections (nm)")
    _common(p)
    p.add_argument("neurons", help="ids '1,2', 'type=NAME' or 'type~REGEX'")
    p.add_argument("--no-pre", action="store_true", help="skip synapses where the neurons are presynaptic")
    p.add_argument("--no-post", action="store_true", help="skip synapses where the neurons are postsynaptic")
    p.add_argument("--min-score", type=_number,
                   help="keep synapses with score >= this, in the dataset's own unit (hemibrain confidence 0-1)")
    _add_rois(p, "keep synapses whose postsynaptic site is in these ROIs")
    p.add_argument("--include-autapses", action="store_true", help="keep synapses of a neuron onto itself")
    _partner_option(p)

    p = sub.add_parser("convert", help="convert public release files to a connectomix release folder",
                       usage="connectomix convert FORMAT SOURCE DEST [options]\n"
                       "       connectomix convert --check [--deep] FOLDER")
    p.add_argument("format", nargs="?", help="source format: neuprint-csv or flywire")
    p.add_argument("source", nargs="?", help="folder (or file) with the downloaded release files")
    p.add_argument("dest", nargs="?", help="release folder to create")
    p.add_argument("--name", help="dataset name written into the manifest (default: from the files)")
    p.add_argument("--release-version", dest="release_version",
                   help="release version written into the manifest (default: from the files)")
    p.add_argument("--primary-rois", help="comma-separated list, or a file with one ROI per line")
    p.add_argument("--coordinate-unit", choices=["auto", "nm", "voxel"], help="flywire: unit of the synapse positions")
    files = p.add_argument_group(
        "input files", "name an input file when the folder's names differ from the defaults (a path, or a name "
        "inside SOURCE); each option applies to the formats listed")
    for flag, formats, text in _CONVERT_FILES:
        files.add_argument(flag, metavar="FILE", help=f"{formats}: {text}")
    p.add_argument("--overwrite", action="store_true", help="replace DEST if it already exists")
    p.add_argument("--check", action="store_true",
                   help="only validate an existing release folder: 'convert --check FOLDER'")
    p.add_argument("--deep", action="store_true", help="with --check: check every row, not just metadata")

    p = sub.add_parser("datasets", help="list configured and built-in datasets")
    p.add_argument("--long", action="store_true",
                   help="describe each dataset: backend, server, version, units, score and threshold, "
                   "annotation source (from the dataset catalogue; local datasets are opened)")
    sub.add_parser("backends", help="list installed backends")
    sub.add_parser("config-path", help="print where the TOML config is read from")
    p = sub.add_parser("cache", help="show or clear the on-disk result cache")
    p.add_argument("action", choices=["info", "clear"], help="info: where it is and its size; clear: empty it")
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
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings on stderr for a person: the category and message wrapped to the terminal, no source line."""
    width = max(40, shutil.get_terminal_size((80, 24)).columns)
    text = f"connectomix: {category.__name__}: {_one_line(Warning(str(message)))}"
    print(textwrap.fill(text, width, subsequent_indent="  "), file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line, tokens redacted."""
    return re.sub(r"\s*\n\s*", " ", redact(str(exc))).strip()


def _open(name: str):
    from .dataset import open as open_dataset

    return open_dataset(name)


def _cmd_neurons(args) -> None:
    crit = NeuronCriteria(
        ids=args.ids.split(",") if args.ids else None, type=args.type, instance=args.instance, regex=args.regex,
        status=args.status, rois=_roi_arg(args.rois), min_pre=args.min_pre, min_post=args.min_post,
    )
    with _open(args.dataset) as ds:
        neurons, roi_counts = ds.fetch_neurons(crit, omit_rois=not args.roi_counts)
    _write(roi_counts if args.roi_counts else neurons, args.output, args.max_rows)


def _cmd_connectivity(args) -> None:
    src = parse_neuron_spec(args.sources) if args.sources else None
    tgt = parse_neuron_spec(args.targets) if args.targets else None
    with _open(args.dataset) as ds:
        df = ds.get_connectivity(src, tgt, by_roi=args.by_roi, rois=_roi_arg(args.rois), min_weight=args.min_weight,
                                 include_autapses=args.include_autapses, by=args.by,
                                 partner_types=args.partner_types)
    _write(df, args.output, args.max_rows)


def _cmd_synapses(args) -> None:
    with _open(args.dataset) as ds:
        df = ds.get_synapses(parse_neuron_spec(args.neurons), pre=not args.no_pre, post=not args.no_post,
                             min_score=args.min_score, rois=_roi_arg(args.rois), include_autapses=args.include_autapses,
                             partner_types=args.partner_types)
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

    given = [a for a in (args.format, args.source, args.dest) if a is not None]
    if args.check:
        if len(given) not in (1, 3):  # 'convert --check FOLDER' (or the older 'convert F S FOLDER --check')
            raise InvalidArgumentError(f"convert --check takes one release folder; got {given}")
        report = validate_release(given[-1], deep=args.deep)
        print(report)
        return 0 if report.ok else 2
    if args.deep:
        raise InvalidArgumentError("--deep applies to 'convert --check FOLDER' only")
    if len(given) != 3:
        raise InvalidArgumentError("convert needs FORMAT SOURCE DEST (e.g. 'connectomix convert flywire downloads/ "
                                   "flywire-release/'), or --check FOLDER to validate a release folder")
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
    from . import catalogue, datasets
    from .config import load_config

    entries = catalogue.load().datasets if args.long else {}
    configured = set(load_config()) if args.long else set()
    width = max(60, shutil.get_terminal_size((80, 24)).columns)
    for name, uri in sorted(datasets().items()):
        line = f"{name:20s} {redact(uri)}"
        print(line if len(line) <= width else f"{name}\n    {redact(uri)}")  # (a URI is never broken)
        if name in configured:
            print("    from the config file" + ("; it overrides the catalogue entry" if name in entries else ""))
        elif name in entries:
            print("\n".join(entries[name].summary_lines(width)))
        if args.long and uri.startswith("release://"):
            with _open(name) as ds:
                print(textwrap.fill(ds.info.description, width, initial_indent="    ", subsequent_indent="        "))


def _cmd_backends(args) -> None:
    from . import backends

    width = max(40, shutil.get_terminal_size((80, 24)).columns)
    for name, info in sorted(backends().items()):
        schemes = ", ".join(s + "://" for s in info.schemes)
        print(textwrap.fill(f"{name:10s} {schemes:14s} {info.description}", width, subsequent_indent=" " * 26))


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
