"""``fetch_neurons(counts=None|True|False)`` on CAVE through the caches: uncomputed counts stay ``<NA>``, never zeros
or another call's numbers, and computed ones are never replaced by ``<NA>``.

The three values ask different questions of the same ids (CAVE counts need
every synapse row), so a cache that served one's table for another would be
silently wrong: counts shown as missing that were asked for, or the ``<NA>``
of a lookup read as the answer to ``counts=True``. Every path (no cache, the
call that fills the cache, a hit in the same Dataset, a new Dataset reading
the disk) is compared with the uncached answer, ``attrs["counts"]`` included.
"""

import warnings

import pandas as pd
import pytest

import connectomix

from cache_support import cave_emu, open_cave  # noqa: F401 - a fixture
IDS = [101, 102, 104, 109]


CALLS = {
    "none": lambda ds: ds.fetch_neurons(IDS),
    "true": lambda ds: ds.fetch_neurons(IDS, counts=True),
    "false": lambda ds: ds.fetch_neurons(IDS, counts=False),
    "criterion": lambda ds: ds.fetch_neurons(NC_UPSTREAM),
}
NC_UPSTREAM = connectomix.NC(ids=IDS, min_upstream=1)


def _run(ds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the once-per-dataset warning about uncomputed counts
        return {name: call(ds) for name, call in CALLS.items()}


def _same(got, expected, what):
    for g, e, table in zip(got, expected, ("neurons", "roi_counts")):
        pd.testing.assert_frame_equal(g, e, obj=f"{what} {table}")
        assert g.attrs == e.attrs, f"{what} {table}"


def test_every_counts_value_gets_its_own_answer_on_every_cache_path(cave_emu, tmp_path):
    with open_cave(cave_emu, False) as plain:
        truth = _run(plain)
    none, full = truth["none"].neurons, truth["true"].neurons
    assert none["upstream"].isna().all() and none["downstream"].isna().all() and "counts" in none.attrs
    assert full["upstream"].notna().all() and full["downstream"].notna().all() and "counts" not in full.attrs
    assert (full["upstream"] > 0).any()  # real numbers: <NA> in their place would be a wrong table
    crit = truth["criterion"].neurons
    assert crit["upstream"].notna().all() and crit["downstream"].isna().all()  # only what the criterion needs
    pd.testing.assert_series_equal(crit["upstream"], full.set_index("id").loc[crit["id"], "upstream"]
                                   .reset_index(drop=True), check_names=False)
    orders = [list(CALLS), list(reversed(CALLS))]  # None's table first, then True's; and the other way round
    for i, order in enumerate(orders):
        directory = str(tmp_path / f"cache{i}")
        with open_cave(cave_emu, directory) as ds:
            for path in ("cold", "hit"):
                for name in order:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        _same(CALLS[name](ds), truth[name], f"{name} ({path}, order {i})")
        with open_cave(cave_emu, directory) as ds:  # a new Dataset: the disk cache
            for name in order:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _same(CALLS[name](ds), truth[name], f"{name} (disk, order {i})")
