"""Mutation testing of the code where a bug gives silently wrong answers.

One command (after ``pip install -e ".[test,mutation]"``)::

    python tools/mutation.py                 # every target, one after another
    python tools/mutation.py cypher versions # only these targets
    python tools/mutation.py --list          # the targets, their functions and tests

For each target below, mutmut (https://mutmut.readthedocs.io) makes small
changes ("mutants") to the named functions of one module -- ``<`` for ``<=``,
``and`` for ``or``, a dropped argument, ``None`` for a value, ... -- and runs
the target's fast tests against each mutant. A mutant that makes a test fail
is *killed*; one that passes every test *survived*: a bug of that shape would
go unnoticed. The script prints the kill rate per target and overall and lists
every survivor with its diff.

Why a staging folder: mutmut names a mutant after its file path
(``backends/connectomix_cave/versions.py`` -> ``backends.connectomix_cave.versions``)
and puts only ``mutants/`` on ``sys.path``, while our backend packages live
under ``backends/`` and import as ``connectomix_cave``. So each target runs in
a fresh copy of the working tree where the packages sit side by side at the top
(``connectomix/``, ``connectomix_cave/``, ...), which is exactly how they
import once installed. The repository itself is never modified.

Not part of CI: a full run takes about half an hour on 2 cores. It uses one
worker process (``--max-children 1``) so it can share a machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {  # staged name -> folder in this repository
    "connectomix": Path("connectomix"),
    "connectomix_release": Path("backends") / "connectomix_release",
    "connectomix_neuprint": Path("backends") / "connectomix_neuprint",
    "connectomix_cave": Path("backends") / "connectomix_cave",
}
#: Lines whose mutation only changes the wording of an error message (the error is still
#: raised, with the same type): the ``raise`` line itself and string-only continuation lines.
#: Message wording is checked by the bad-input tests, not by this run.
MESSAGE_LINES = [r"^\s*raise \w+\(", r"^\s*f?\"[^\"]*\"\s*[,)]*\s*$"]

# mutmut exit codes (mutmut.stats.status_by_exit_code)
KILLED, SURVIVED, NO_TESTS, TIMEOUT = {1, 3}, {0}, {5, 33}, {24, -24, 36, 152, 255}


@dataclass
class Target:
    """One module, the functions of it to mutate, and the fast tests that cover them."""

    name: str
    path: str  # staged path of the module, e.g. "connectomix_cave/versions.py"
    functions: list[str]  # mutmut function keys: "x_name" for functions, "xǁClassǁname" for methods
    tests: list[str]  # staged test paths (node ids allowed)
    skip_lines: list[str] = field(default_factory=lambda: list(MESSAGE_LINES))

    @property
    def module(self) -> str:
        return self.path[: -len(".py")].replace("/", ".")

    def globs(self) -> list[str]:
        return [f"{self.module}.{f}__mutmut_*" for f in self.functions]


REL_CONF = "tests/test_conformance_release.py"
TARGETS = [
    Target("core-filters", "connectomix/dataset.py", [
        "xǁDatasetǁfetch_neurons", "xǁDatasetǁget_connectivity", "xǁDatasetǁget_synapses",
        "xǁDatasetǁ_by_type", "xǁDatasetǁ_roi_list", "xǁDatasetǁ_resolve_ids", "x__all_neurons",
        "x__filter_connectivity", "x__non_negative_int", "x__optional_batch_size", "x__concat",
    ], [REL_CONF, "tests/test_core_filters.py", "tests/test_compare_and_types.py"]),
    Target("schema", "connectomix/schema.py", [
        "xǁTableSchemaǁvalidate", "x__coerce", "x_validate", "x_provenance",
    ], ["tests/test_schema.py", "tests/test_frames.py", REL_CONF]),
    Target("criteria", "connectomix/criteria.py", [
        "x_parse_ids", "x__one_id", "x__check_pattern", "x__as_tuple", "xǁNeuronCriteriaǁ__init__",
        "xǁNeuronCriteriaǁall_rois", "xǁNeuronCriteriaǁmatches_nothing", "xǁNeuronCriteriaǁis_ids_only",
        "xǁNeuronCriteriaǁwith_ids", "x_to_criteria",
    ], ["tests/test_criteria.py", REL_CONF] + [f"tests/test_bad_input.py::{t}" for t in (
        "test_non_ascii_and_python_only_digits_are_not_ids",
        "test_patterns_read_differently_by_python_and_re2_are_refused",
        "test_zero_dimensional_arrays_and_mappings", "test_parse_ids_accepts_exactly_the_valid_ids",
        "test_neuron_criteria_accepts_or_raises")]),
    Target("morphology", "connectomix/morphology.py", ["*"], ["tests/test_morphology.py"]),
    Target("cypher-escaping", "connectomix_neuprint/cypher.py", [
        "x_string_literal", "x_identifier", "x_id_list", "x__in_or_eq", "x_neurons_query",
    ], ["connectomix_neuprint/tests/test_cypher.py"], skip_lines=[]),
    Target("neuprint-units", "connectomix_neuprint/backend.py", [
        "x_synapse_ids", "xǁNeuprintBackendǁ_units", "xǁNeuprintBackendǁvoxel_size", "xǁNeuprintBackendǁto_nm",
        "xǁNeuprintBackendǁ_synapse_table", "xǁNeuprintBackendǁ_radius_scale",
    ], ["connectomix_neuprint/tests/test_voxel_units.py", "connectomix_neuprint/tests/test_conformance_neuprint.py"]
       + [f"connectomix_neuprint/tests/test_issue10_neuprint.py::{t}" for t in (
           "test_nm_dataset_positions_are_not_multiplied", "test_voxel_dataset_positions_are_multiplied",
           "test_missing_voxel_size_is_an_error_not_8nm", "test_units_option_is_checked")]),
    Target("cave-units-and-row-caps", "connectomix_cave/backend.py", [
        "xǁCaveBackendǁ_resolution_of", "xǁCaveBackendǁ_query", "xǁCaveBackendǁ_request",
        "xǁCaveBackendǁ_may_be_capped", "xǁCaveBackendǁ_split_by_range", "xǁ_CapRecorderǁ*",
        "xǁCaveBackendǁget_synapses",
    ], ["connectomix_cave/tests/test_cave_caps_resolution.py", "connectomix_cave/tests/test_conformance_cave.py",
        "connectomix_cave/tests/test_cave_backend.py::test_row_cap_is_detected_and_split_until_complete",
        "connectomix_cave/tests/test_cave_backend.py::test_server_cap_below_ours_is_detected_from_the_warning_header"]
       + [f"connectomix_cave/tests/test_issue10_cave.py::{t}" for t in (
           "test_banc_nm_table_and_microns_voxel_table_give_the_same_nm",
           "test_catalogue_unit_disagreeing_with_table_metadata_is_refused")]),
    Target("cave-versions", "connectomix_cave/versions.py", ["*"], [
        "connectomix_cave/tests/test_versions.py", "connectomix_cave/tests/test_cave_backend.py",
    ]),
    Target("cache-keys", "connectomix/cache.py", ["x__normalise", "x_query_key"], ["tests/test_cache.py"]),
]


def stage(target: Target, workdir: Path, env: dict, source: Path) -> tuple[Path, list[str]]:
    """A fresh copy of the working tree with the packages side by side, configured for ``target``.

    Returns the folder and the tests that already fail on the unmutated code: they are deselected
    (they cannot kill anything, and mutmut refuses to start while any selected test fails).
    """
    here = workdir / target.name
    shutil.rmtree(here, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name, src in PACKAGES.items():
        shutil.copytree(source / src, here / name, ignore=ignore)
    shutil.copytree(source / "tests", here / "tests", ignore=ignore)
    if (source / "conftest.py").exists():  # the test-run settings (e.g. a private cache directory)
        shutil.copy2(source / "conftest.py", here / "conftest.py")
    tests = [t for t in target.tests if (here / t.split("::")[0]).exists()]
    (here / "pyproject.toml").write_text((source / "pyproject.toml").read_text())
    clean = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", *tests],
                           cwd=here, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failing = sorted({line.split()[1] for line in clean.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))})
    config = {
        "source_paths": list(PACKAGES),
        "only_mutate": [target.path],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-x", "-q"] + [a for t in failing for a in ("--deselect", t)],
        "do_not_mutate_patterns": target.skip_lines,
        "use_git_change_detection": False,
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in config.items()]
    (here / "pyproject.toml").write_text((source / "pyproject.toml").read_text() + "\n".join(lines) + "\n")
    return here, failing


def run_target(target: Target, workdir: Path, log, source: Path = ROOT) -> dict:
    mutmut = Path(sys.executable).with_name("mutmut")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUTANT_UNDER_TEST")}
    here, failing = stage(target, workdir, env, source)
    started = time.monotonic()
    proc = subprocess.run([str(mutmut), "run", "--max-children", "1", *target.globs()], cwd=here, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write(f"## {target.name}\n{proc.stdout}\n")
    meta = here / "mutants" / (target.path + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    prefixes = tuple(g[: -len("*")].split("__mutmut_")[0] for g in target.globs())
    wanted = {k: v for k, v in codes.items() if _selected(k, prefixes)}
    result = {
        "name": target.name, "path": target.path, "seconds": time.monotonic() - started,
        "returncode": proc.returncode, "deselected": failing,
        "killed": sorted(k for k, v in wanted.items() if v in KILLED),
        "timeout": sorted(k for k, v in wanted.items() if v in TIMEOUT),
        "survived": sorted(k for k, v in wanted.items() if v in SURVIVED),
        "no_tests": sorted(k for k, v in wanted.items() if v in NO_TESTS),
        "other": sorted(k for k, v in wanted.items() if v not in KILLED | SURVIVED | NO_TESTS | TIMEOUT),
    }
    result["diffs"] = {k: _show(here, mutmut, env, k) for k in result["survived"] + result["no_tests"]}
    return result


def _selected(key: str, prefixes: tuple[str, ...]) -> bool:
    name = key.split("__mutmut_")[0]
    return any(name == p or (p.endswith("*") and name.startswith(p[:-1])) for p in prefixes)


def _show(here: Path, mutmut: Path, env: dict, key: str) -> str:
    out = subprocess.run([str(mutmut), "show", key], cwd=here, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True).stdout
    return "\n".join(line for line in out.splitlines() if line.startswith(("-", "+")) and not
                     line.startswith(("---", "+++")))


def report(results: list[dict]) -> str:
    rows = ["| target | module | mutants | killed | survived | no test | kill rate | time |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    tot = {"n": 0, "k": 0}
    for r in results:
        killed = len(r["killed"]) + len(r["timeout"])  # a mutant that hangs the tests is caught
        n = killed + len(r["survived"]) + len(r["no_tests"]) + len(r["other"])
        tot["n"] += n
        tot["k"] += killed
        rate = f"{100 * killed / n:.0f}%" if n else "-"
        rows.append(f"| {r['name']} | {r['path']} | {n} | {killed} | {len(r['survived'])} | "
                    f"{len(r['no_tests'])} | {rate} | {r['seconds']:.0f} s |")
    rate = f"{100 * tot['k'] / tot['n']:.1f}%" if tot["n"] else "-"
    rows.append(f"| **all** | | {tot['n']} | {tot['k']} | | | **{rate}** | |")
    failing = [(r["name"], t) for r in results for t in r["deselected"]]
    lines = rows + [""] + [f"deselected in {name} (fails on the unmutated code): {t}" for name, t in failing]
    lines += ["", "Surviving mutants (and mutants no selected test reaches):"]
    for r in results:
        for key in r["survived"] + r["no_tests"] + r["other"]:
            tag = "survived" if key in r["survived"] else ("no test" if key in r["no_tests"] else "other")
            lines.append(f"\n{key} ({tag})\n{r['diffs'].get(key, '')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="target names (default: all); see --list")
    parser.add_argument("--list", action="store_true", help="show the targets and exit")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "connectomix-mutation",
                        help="where the staged copies go (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--rev", help="mutate the code and run the tests of this git revision instead of the "
                        "working tree (e.g. to measure the kill rate before a change)")
    args = parser.parse_args(argv)
    by_name = {t.name: t for t in TARGETS}
    if args.list:
        for t in TARGETS:
            print(f"{t.name}: {t.path} [{', '.join(t.functions)}]\n    tests: {' '.join(t.tests)}")
        return 0
    unknown = [n for n in args.targets if n not in by_name]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; valid: {sorted(by_name)}")
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        parser.error('mutmut is not installed in this environment: pip install -e ".[mutation]"')
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = ROOT
    if args.rev:
        source = args.workdir / "_source"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.rev, "connectomix", "backends", "tests",
                                  "pyproject.toml", "conftest.py"], check=True, stdout=subprocess.PIPE).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    results = []
    with open(args.workdir / "mutmut.log", "w") as log:
        for name in args.targets or list(by_name):
            print(f"running {name} ...", flush=True)
            results.append(run_target(by_name[name], args.workdir, log, source))
            if args.json:  # after every target, so a long run can be read (or stopped) part way
                args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
            r = results[-1]
            print(f"  {len(r['killed']) + len(r['timeout'])} killed, {len(r['survived'])} survived, "
                  f"{len(r['no_tests'])} without a test, in {r['seconds']:.0f} s"
                  + (f"; mutmut exited {r['returncode']} (see the log)" if r["returncode"] else "")
                  + (f"; deselected {len(r['deselected'])} test(s) failing on the unmutated code"
                     if r["deselected"] else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(report(results))
    print(f"\n(mutmut output: {args.workdir / 'mutmut.log'})")
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
