"""An unusable result cache (corrupt index, a directory that cannot be created, a read-only directory, a full
disk) degrades to no cache: every answer is still right, and there is one CacheWarning, never a raw sqlite or
permission error."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import pandas as pd
import pytest

from connectomix.cache import ResultCache

from cache_support import CountingRelease, make, recorded_cache_warnings, uncached


# partner_types=False: the call counts below are of the tables' own backend calls (the partner columns'
# neuron lookup is another call, tested in tests/test_partners.py)
def _queries_and_warnings(ds):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        answers = [ds.get_synapses([101], partner_types=False), ds.get_synapses([101], partner_types=False),
                   ds.get_connectivity(sources=[102], partner_types=False), ds.fetch_neurons(type="KC").neurons]
    return answers, recorded_cache_warnings(record)


def _expected(release):
    ref = uncached(release)
    return [ref.get_synapses([101], partner_types=False), ref.get_synapses([101], partner_types=False),
            ref.get_connectivity(sources=[102], partner_types=False), ref.fetch_neurons(type="KC").neurons]


def _assert_degraded(answers, warned, release, reason):
    for got, exp in zip(answers, _expected(release)):
        pd.testing.assert_frame_equal(got, exp)
    assert len(warned) == 1, [str(w.message) for w in warned]
    assert reason in str(warned[0].message) and "queries run without it" in str(warned[0].message)


def test_a_corrupt_index_file_gives_answers_and_one_warning(toy_release, tmp_path):
    directory = tmp_path / "cache"
    make(toy_release, ResultCache(directory)).get_synapses([101])
    (directory / "cache.db").write_bytes(b"this is not an sqlite database" * 100)
    answers, warned = _queries_and_warnings(make(toy_release, str(directory)))
    _assert_degraded(answers, warned, toy_release, "DatabaseError")
    assert CountingRelease.calls == 4


def test_a_cache_directory_that_cannot_be_created_gives_answers_and_one_warning(toy_release, tmp_path,
                                                                                 monkeypatch):
    # an unwritable home: the default cache directory lies below something that is not a folder
    blocker = tmp_path / "home"
    blocker.write_text("a file where a folder should be")
    monkeypatch.setenv("CONNECTOMIX_CACHE_DIR", str(blocker / "cache" / "results"))
    answers, warned = _queries_and_warnings(make(toy_release, True))
    _assert_degraded(answers, warned, toy_release, "cannot be opened")
    # the default cache is shared by the process: a second Dataset does not warn again
    again, warned_again = _queries_and_warnings(make(toy_release, True))
    assert warned_again == []


def test_the_cli_reports_an_unusable_cache_as_one_error(tmp_path, monkeypatch, capsys):
    from connectomix.cli import main

    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("CONNECTOMIX_CACHE_DIR", str(blocker / "c"))
    assert main(["cache", "info"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("connectomix: error: the result cache at") and "Traceback" not in err
    monkeypatch.setenv("CONNECTOMIX_CACHE_DIR", str(tmp_path / "good"))
    assert main(["cache", "info"]) == 0
    assert "0 result(s)" in capsys.readouterr().out


_DEGRADED_SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    from connectomix import errors
    from connectomix.cache import ResultCache
    from connectomix.dataset import Dataset
    from connectomix_release.backend import ReleaseBackend

    release, directory, out, mode = sys.argv[1:5]
    if mode == "disk-full":
        import resource, signal
        cache = ResultCache(directory)  # opens fine; then the disk fills up
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
    else:
        cache = directory
    ds = Dataset(ReleaseBackend(release), cache=cache)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        frames = [ds.get_synapses([101, 102, 103]), ds.get_synapses([101, 102, 103]),
                  ds.get_connectivity(sources=[102]), ds.fetch_neurons(type="KC").neurons]
    if mode == "disk-full":
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # room again, for the answers
    for i, f in enumerate(frames):
        f.to_pickle(f"{out}/{i}.pkl")
    print(json.dumps([str(w.message) for w in record if issubclass(w.category, errors.CacheWarning)]))
""")


def _run_degraded(release, directory, out, mode, prefix=()):
    script = out / "degraded.py"
    script.write_text(_DEGRADED_SCRIPT)
    cmd = [*prefix, sys.executable, str(script), str(release), str(directory), str(out), mode]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warned = json.loads(proc.stdout.strip().splitlines()[-1])
    got = [pd.read_pickle(out / f"{i}.pkl") for i in range(4)]
    ref = uncached(release)
    expected = [ref.get_synapses([101, 102, 103]), ref.get_synapses([101, 102, 103]),
                ref.get_connectivity(sources=[102]), ref.fetch_neurons(type="KC").neurons]
    for g, e in zip(got, expected):
        pd.testing.assert_frame_equal(g, e)
    return warned


def _read_only_prefix(directory):
    """Run a command with ``directory`` read-only: chmod for ordinary users, a read-only bind mount for root."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: cannot make a read-only directory")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind '{directory}' '{directory}' && "
                            f"mount -o remount,ro,bind '{directory}' && ! touch '{directory}/probe'"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("running as root and cannot bind-mount read-only here")
    return ("unshare", "-m", "sh", "-c", f"mount --bind '{directory}' '{directory}' && "
            f"mount -o remount,ro,bind '{directory}' && exec \"$0\" \"$@\"")


@pytest.mark.parametrize("populated", [True, False], ids=["existing-cache", "missing-cache"])
def test_a_read_only_cache_directory_gives_answers_and_one_warning(toy_release, tmp_path, populated):
    parent = tmp_path / "ro"
    directory = parent / "cache"
    parent.mkdir()
    if populated:
        make(toy_release, ResultCache(directory)).get_synapses([101, 102, 103])
    out = tmp_path / "out"
    out.mkdir()
    prefix = _read_only_prefix(parent)
    if not prefix:
        for path in [parent, *parent.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        warned = _run_degraded(toy_release, directory, out, "read-only", prefix)
    finally:
        for path in [parent, *parent.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert len(warned) == 1 and "queries run without it" in warned[0], warned


def test_a_full_disk_gives_answers_and_one_warning(toy_release, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    warned = _run_degraded(toy_release, tmp_path / "cache", out, "disk-full")
    assert len(warned) == 1 and "cannot be written" in warned[0], warned
