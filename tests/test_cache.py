"""The on-disk result cache: hits, self-checking entries, keys that hold every answer-changing field, and the
identity of release data (see also test_cache_degraded, test_cache_corruption, test_cache_identity_remote)."""

import dataclasses
import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.backend import ConnectivityQuery, SynapseQuery
from connectomix.cache import _IGNORED, ResultCache, query_key
from connectomix.criteria import NeuronCriteria
from connectomix.testing import make_toy_release
from connectomix_release.backend import ReleaseBackend

from cache_support import CountingRelease, make, recorded_cache_warnings, uncached


class UnidentifiedRelease(CountingRelease):
    """A backend that cannot identify its data (like live data): never cached."""

    def cache_identity(self, version):
        return None


@pytest.fixture
def cache(tmp_path):
    return ResultCache(tmp_path / "cache", size_limit=50 * 1024**2)


# --- hits -----------------------------------------------------------------------------------------------


def test_repeated_queries_are_served_from_disk(toy_release, cache):
    # partner_types=False: the counts below are of the table's own backend call (the partner
    # columns' neuron lookup is another call and entry, tested in tests/test_partners.py)
    ds = make(toy_release, cache)
    first = ds.get_connectivity(sources=[101, 102], by_roi=True, partner_types=False)
    again = ds.get_connectivity(sources=[101, 102], by_roi=True, progress=False, batch_size=1, partner_types=False)
    assert CountingRelease.calls == 1
    pd.testing.assert_frame_equal(first, again)
    assert again.attrs["version"] == first.attrs["version"]
    ds.get_connectivity(sources=[101, 103], by_roi=True, partner_types=False)
    assert CountingRelease.calls == 2  # other ids: a miss
    syn1 = ds.get_synapses([101], partner_types=False)
    syn2 = ds.get_synapses([101], partner_types=False)
    assert CountingRelease.calls == 3 and syn1.equals(syn2)
    n1, r1 = ds.fetch_neurons(type="KC")
    n2, r2 = ds.fetch_neurons(type="KC")
    assert CountingRelease.calls == 4 and n1.equals(n2) and r1.equals(r2) and len(r1)
    assert len(cache) >= 5 and cache.volume() > 0


def test_cache_survives_a_new_process_worth_of_objects(toy_release, tmp_path):
    make(toy_release, ResultCache(tmp_path / "c")).get_synapses([102])
    ds = make(toy_release, ResultCache(tmp_path / "c"))
    ds.get_synapses([102])
    assert CountingRelease.calls == 0


def test_data_without_identity_is_never_cached(toy_release, cache):
    # partner_types=False: the counts below are of the table's own backend call (the partner
    # columns' neuron lookup is another call and entry, tested in tests/test_partners.py)
    ds = make(toy_release, cache, UnidentifiedRelease)
    ds.get_synapses([101], partner_types=False)
    ds.get_synapses([101], partner_types=False)
    assert UnidentifiedRelease.calls == 2 and len(cache) == 0


def test_cache_can_be_disabled_and_cleared(toy_release, cache):
    # partner_types=False: the counts below are of the table's own backend call (the partner
    # columns' neuron lookup is another call and entry, tested in tests/test_partners.py)
    ds = make(toy_release, cache=False)
    ds.get_synapses([101], partner_types=False)
    ds.get_synapses([101], partner_types=False)
    assert CountingRelease.calls == 2
    ds = make(toy_release, cache)
    ds.get_synapses([101], partner_types=False)
    assert cache.clear() >= 1 and len(cache) == 0
    ds.get_synapses([101], partner_types=False)
    assert CountingRelease.calls == 2


def test_size_limit_evicts(toy_release, tmp_path):
    small = ResultCache(tmp_path / "small", size_limit=20_000)
    ds = make(toy_release, small)
    for body in (101, 102, 103, 104, 105, 106, 107, 108):
        ds.get_synapses([body])
    assert small.volume() <= 200_000  # diskcache culls to the limit (plus its own overhead)


def test_bad_cache_option(toy_release):
    with pytest.raises(errors.InvalidArgumentError, match="cache must be"):
        connectomix.open(f"release://{toy_release}", cache=3.5)
    with pytest.raises(errors.InvalidArgumentError, match="max_workers"):
        connectomix.open(f"release://{toy_release}", max_workers=0)


# --- self-checking entries --------------------------------------------------------------------------------


def test_entry_round_trip_keeps_values_dtypes_and_attrs(toy_release):
    from connectomix.cache import decode_entry, encode_entry

    df = uncached(toy_release).get_synapses([101, 102])
    back = decode_entry("k", encode_entry("k", df))
    pd.testing.assert_frame_equal(back, df)
    assert back.attrs == json.loads(json.dumps(df.attrs, default=str))


def _forged(key, df, *, rows=None, cut=0, other_key=None):
    """An entry with a *valid* digest whose content lies (checks after the digest must catch it)."""
    import pyarrow as pa

    from connectomix import cache as cache_module

    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    arrow = sink.getvalue().to_pybytes()
    arrow = arrow[: len(arrow) - cut]
    attrs = b"{}"
    header = json.dumps({"key": other_key or key, "rows": table.num_rows if rows is None else rows,
                         "schema": cache_module._schema_of(table), "attrs_bytes": len(attrs),
                         "arrow_bytes": len(arrow)}).encode()
    body = len(header).to_bytes(4, "little") + header + attrs + arrow
    return cache_module._MAGIC + cache_module._digest(body) + body


@pytest.mark.parametrize("damage, message", [
    (lambda b, df: b[:-1], "digest mismatch"),
    (lambda b, df: b[:10], "bad magic or too short"),
    (lambda b, df: b"XXXX" + b[4:], "bad magic"),
    (lambda b, df: b[:60] + bytes([b[60] ^ 0x10]) + b[61:], "digest mismatch"),
    (lambda b, df: _forged("k", df, cut=8), "end-of-stream marker"),          # cut at a message boundary
    (lambda b, df: _forged("k", df, cut=100), "end-of-stream marker"),
    (lambda b, df: _forged("k", df, rows=3), "differs from the header"),
    (lambda b, df: _forged("k", df, other_key="other"), "another key"),
])
def test_every_kind_of_damage_is_refused(toy_release, damage, message):
    from connectomix.cache import CorruptEntryError, decode_entry, encode_entry

    df = uncached(toy_release).get_synapses([101])
    blob = encode_entry("k", df)
    with pytest.raises(CorruptEntryError, match=message):
        decode_entry("k", damage(blob, df))


def test_a_corrupt_file_on_disk_is_deleted_refetched_and_warned_once(toy_release, cache):
    # partner_types=False: the counts below are of the table's own backend call (the partner
    # columns' neuron lookup is another call and entry, tested in tests/test_partners.py)
    ds = make(toy_release, cache)
    expected = uncached(toy_release).get_synapses([101, 102, 103, 104], partner_types=False)
    ds.get_synapses([101, 102, 103, 104], partner_types=False)
    files = [p for p in cache.directory.rglob("*.val")]
    assert len(files) == 1  # large enough to live in its own file
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit in the middle of the Arrow data
    files[0].write_bytes(bytes(raw))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = ds.get_synapses([101, 102, 103, 104], partner_types=False)
    pd.testing.assert_frame_equal(got, expected)
    assert CountingRelease.calls == 2  # refetched
    [warning] = recorded_cache_warnings(record)
    assert "corrupt entry" in str(warning.message) and "digest mismatch" in str(warning.message)
    again = ds.get_synapses([101, 102, 103, 104], partner_types=False)  # the refetched answer was stored again, intact
    assert CountingRelease.calls == 2
    pd.testing.assert_frame_equal(again, expected)


def test_an_entry_moved_to_another_key_is_refused(toy_release, cache):
    # partner_types=False: the counts below are of the table's own backend call (the partner
    # columns' neuron lookup is another call and entry, tested in tests/test_partners.py)
    ds = make(toy_release, cache)
    ds.get_synapses([101], partner_types=False)
    ds.get_synapses([102], partner_types=False)
    store = cache._store
    k101, k102 = list(store)
    store.set(k102, store.get(k101))  # e.g. a damaged index pointing at the wrong value
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = [ds.get_synapses([101], partner_types=False), ds.get_synapses([102], partner_types=False)]
    expected = uncached(toy_release)
    pd.testing.assert_frame_equal(got[0], expected.get_synapses([101], partner_types=False))
    pd.testing.assert_frame_equal(got[1], expected.get_synapses([102], partner_types=False))
    assert "another key" in str(recorded_cache_warnings(record)[0].message)


def test_a_pickled_value_is_never_unpickled(cache):
    import pickle

    cache.put("k", pd.DataFrame({"a": [1]}))
    # write a pickle straight into the store's table, as a damaged or tampered index could hold
    cache._store._sql("UPDATE Cache SET mode = 4, value = ? WHERE key = ?",
                      (pickle.dumps(pd.DataFrame({"a": [2]})), "k"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert cache.get("k") is None
    assert "mode 4" in str(recorded_cache_warnings(record)[0].message)


# --- keys hold every field that changes the answer ---------------------------------------------------------

IDS = np.array([101, 102], dtype="int64")

#: For every query field: two values whose answers can differ. A field missing here fails the coverage test.
SYNAPSE_VARIANTS = {
    "ids": (IDS, np.array([101, 103], dtype="int64")),
    "pre": (True, False),
    "post": (True, False),
    "min_score": (0.5, 0.9),
    "rois": (None, ("A",)),
    "include_autapses": (False, True),
    "materialization": (1, 2),
}
CONNECTIVITY_VARIANTS = {
    "sources": (IDS, np.array([101, 103], dtype="int64")),
    "targets": (None, IDS),
    "by_roi": (False, True),
    "rois": (("A",), ("A", "B")),
    "min_weight": (1, 2),
    "include_autapses": (False, True),
    "materialization": (1, 2),
    "sources_neurons_only": (False, True),
    "targets_neurons_only": (False, True),
}
CRITERIA_VARIANTS = {
    "ids": ({"ids": [101]}, {"ids": [102]}),
    "type": ({"type": "KC"}, {"type": "LN"}),
    "instance": ({"instance": "KC_R"}, {"instance": "KC_L"}),
    "regex": ({"type": "K.*", "regex": False}, {"type": "K.*", "regex": True}),
    "status": ({"status": "Traced"}, {"status": "Anchor"}),
    "rois": ({"rois": "A"}, {"rois": "B"}),
    "input_rois": ({"input_rois": "A"}, {"input_rois": "B"}),
    "output_rois": ({"output_rois": "A"}, {"output_rois": "B"}),
    "roi_req": ({"rois": ["A", "B"]}, {"rois": ["A", "B"], "roi_req": "any"}),
    "min_roi_inputs": ({"input_rois": "A"}, {"input_rois": "A", "min_roi_inputs": 5}),
    "min_roi_outputs": ({"output_rois": "A"}, {"output_rois": "A", "min_roi_outputs": 5}),
    "min_pre": ({}, {"min_pre": 5}),
    "min_post": ({}, {"min_post": 5}),
    "min_upstream": ({}, {"min_upstream": 5}),
    "min_downstream": ({}, {"min_downstream": 5}),
    "side": ({"side": "left"}, {"side": "right"}),
    "class_": ({"class_": "KC"}, {"class_": "ALPN"}),
    "superclass": ({"superclass": "local"}, {"superclass": "output"}),
    "nt": ({"nt": "gaba"}, {"nt": "glutamate"}),
    "flywire_type": ({"flywire_type": "a"}, {"flywire_type": "b"}),
    "hemibrain_type": ({"hemibrain_type": "a"}, {"hemibrain_type": "b"}),
    "manc_type": ({"manc_type": "a"}, {"manc_type": "b"}),
    "malecns_type": ({"malecns_type": "a"}, {"malecns_type": "b"}),
    "label": ({"ids": [101]}, {"ids": [101], "label": "neuron"}),
}
IDENTITY = {"server": "h", "dataset": "d", "last-mod": "2024-01-01"}


@pytest.mark.parametrize("cls, variants", [(SynapseQuery, SYNAPSE_VARIANTS),
                                           (ConnectivityQuery, CONNECTIVITY_VARIANTS),
                                           (NeuronCriteria, CRITERIA_VARIANTS)])
def test_every_query_field_is_classified(cls, variants):
    names = {f.name for f in dataclasses.fields(cls)}
    assert names - _IGNORED == set(variants), "a new query field: does it change the answer? add it above"


def _base_synapse_query(**change):
    return SynapseQuery(**{"ids": IDS, "min_score": None, "materialization": 1, **change})


def _base_connectivity_query(**change):
    return ConnectivityQuery(**{"sources": IDS, "targets": None, "materialization": 1, **change})


@pytest.mark.parametrize("field", sorted(SYNAPSE_VARIANTS))
def test_synapse_query_fields_change_the_key(field):
    a, b = SYNAPSE_VARIANTS[field]
    assert (query_key(IDENTITY, "get_synapses", _base_synapse_query(**{field: a}))
            != query_key(IDENTITY, "get_synapses", _base_synapse_query(**{field: b})))


@pytest.mark.parametrize("field", sorted(CONNECTIVITY_VARIANTS))
def test_connectivity_query_fields_change_the_key(field):
    a, b = CONNECTIVITY_VARIANTS[field]
    assert (query_key(IDENTITY, "get_connectivity", _base_connectivity_query(**{field: a}))
            != query_key(IDENTITY, "get_connectivity", _base_connectivity_query(**{field: b})))


@pytest.mark.parametrize("field", sorted(CRITERIA_VARIANTS))
def test_neuron_criteria_fields_change_the_key(field):
    a, b = CRITERIA_VARIANTS[field]
    assert query_key(IDENTITY, "fetch_neurons", NeuronCriteria(**a)) != query_key(
        IDENTITY, "fetch_neurons", NeuronCriteria(**b))


@pytest.mark.parametrize("field", sorted(_IGNORED))
def test_fetch_knobs_do_not_change_the_key(field):
    knobs = {"batch_size": (None, 7), "max_workers": (8, 1), "progress": (False, True),
             "check_ids": (False, True)}[field]
    method, base = (("get_connectivity", _base_connectivity_query) if field == "check_ids" else
                    ("get_synapses", _base_synapse_query))
    a, b = (base(**{field: v}) for v in knobs)
    assert query_key(IDENTITY, method, a) == query_key(IDENTITY, method, b)


def test_identity_method_and_values_change_the_key():
    q = _base_synapse_query()
    key = query_key(IDENTITY, "get_synapses", q)
    for field in IDENTITY:
        assert query_key({**IDENTITY, field: "other"}, "get_synapses", q) != key
    assert query_key(IDENTITY, "get_connectivity", q) != key
    # values that print alike but are different values
    assert query_key(IDENTITY, "m", {"x": 1}) != query_key(IDENTITY, "m", {"x": "1"})
    assert query_key(IDENTITY, "m", {"x": None}) != query_key(IDENTITY, "m", {"x": "None"})
    assert query_key(IDENTITY, "m", {"x": []}) != query_key(IDENTITY, "m", {"x": None})


def test_numpy_values_key_like_the_python_values_they_hold():
    # the same value as a numpy scalar or array and as a Python value: one key
    for np_value, py_value in [(np.int64(3), 3), (np.float64(0.5), 0.5), (np.bool_(True), True),
                               (np.array([1, 2], dtype="int64"), [1, 2]), (np.array([0.5, 2.25]), [0.5, 2.25])]:
        assert query_key(IDENTITY, "m", {"x": np_value}) == query_key(IDENTITY, "m", {"x": py_value}), np_value
    # float arrays keep their fractions: 0.5 and 0.75 are different thresholds, 1.0 and 1.5 too
    assert query_key(IDENTITY, "m", {"x": np.array([0.5])}) != query_key(IDENTITY, "m", {"x": np.array([0.75])})
    assert query_key(IDENTITY, "m", {"x": np.array([1.0])}) != query_key(IDENTITY, "m", {"x": np.array([1.5])})


def test_values_json_cannot_encode_still_get_distinct_keys():
    # e.g. a timestamp as the materialization (the query field is typed Any)
    import datetime

    a = _base_synapse_query(materialization=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    b = _base_synapse_query(materialization=datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc))
    assert query_key(IDENTITY, "get_synapses", a) != query_key(IDENTITY, "get_synapses", b)


# The same queries end to end: the narrower answer is cached first, so a key that forgot the field
# would serve it for the wider question.
END_TO_END = [
    ("get_synapses", dict(x=[101, 102], min_score=0.9), dict(x=[101, 102], min_score=0.5)),
    ("get_synapses", dict(x=[101, 102], min_score=0.5), dict(x=[101, 102])),
    ("get_synapses", dict(x=[101, 102], post=False), dict(x=[101, 102])),
    ("get_synapses", dict(x=[101, 102], pre=False), dict(x=[101, 102])),
    ("get_synapses", dict(x=[101, 102], rois="A"), dict(x=[101, 102])),
    ("get_synapses", dict(x=[101, 102]), dict(x=[101, 102], include_autapses=True)),
    ("get_synapses", dict(x=[101]), dict(x=[101, 102])),
    ("get_connectivity", dict(sources=[101, 102], min_weight=3), dict(sources=[101, 102])),
    ("get_connectivity", dict(sources=[101, 102], targets=[104]), dict(sources=[101, 102])),
    ("get_connectivity", dict(sources=[101, 102], rois="A"), dict(sources=[101, 102], by_roi=True)),
    ("get_connectivity", dict(sources=[101, 102]), dict(sources=[101, 102], include_autapses=True)),
    ("get_connectivity", dict(sources=[101], targets=NeuronCriteria()), dict(sources=[101])),
    ("fetch_neurons", dict(type="KC", status="Traced"), dict(type="KC")),
    ("fetch_neurons", dict(type="K.*", regex=True, min_pre=60), dict(type="K.*", regex=True)),
    ("fetch_neurons", dict(rois=["A", "AB"]), dict(rois=["A", "AB"], roi_req="any")),
    ("fetch_neurons", dict(input_rois="A", min_roi_inputs=20), dict(input_rois="A")),
    ("fetch_neurons", dict(output_rois="A", min_roi_outputs=24), dict(output_rois="A")),
    ("fetch_neurons", {"_": NeuronCriteria(ids=[101, 901], label="neuron")}, {"_": [101, 901]}),
]


def call(ds, method, query):
    query = dict(query)
    args = (query.pop("_"),) if "_" in query else ()
    return getattr(ds, method)(*args, **query)


@pytest.mark.parametrize("method, narrow, wide", END_TO_END)
def test_a_narrower_cached_answer_is_never_served_for_a_wider_question(toy_release, cache, method, narrow, wide):
    ds = make(toy_release, cache)
    reference = uncached(toy_release)
    expected_narrow, expected_wide = (call(reference, method, q) for q in (narrow, wide))
    if method == "fetch_neurons":
        expected_narrow, expected_wide = expected_narrow.neurons, expected_wide.neurons
    assert len(expected_wide) > len(expected_narrow)  # the pair really has different answers
    call(ds, method, narrow)
    got = call(ds, method, wide)
    pd.testing.assert_frame_equal(got.neurons if method == "fetch_neurons" else got, expected_wide)


# --- the identity of release data --------------------------------------------------------------------------


def _shift_synapses(folder, dx=8.0):
    """Rewrite synapses.parquet in place with every presynaptic x moved by ``dx`` nm (a consistent release)."""
    path = folder / "synapses.parquet"
    syn = pd.read_parquet(path)
    syn["pre_x"] = syn["pre_x"] + dx
    syn.to_parquet(path, index=False)


def test_release_files_changed_in_place_give_the_new_answer(tmp_path, cache):
    # partner_types=False: the counts below are of the table's own backend call (the partner
    # columns' neuron lookup is another call and entry, tested in tests/test_partners.py)
    folder = make_toy_release(tmp_path / "rel")
    ds = make(folder, cache)
    before = ds.get_synapses([101], partner_types=False)
    _shift_synapses(folder)
    after_expected = uncached(folder).get_synapses([101], partner_types=False)
    assert not after_expected["pre_x"].equals(before["pre_x"])
    pd.testing.assert_frame_equal(ds.get_synapses([101], partner_types=False), after_expected)  # the same Dataset
    assert CountingRelease.calls == 2  # a miss: the files changed
    again = make(folder, cache).get_synapses([101], partner_types=False)  # a new Dataset
    pd.testing.assert_frame_equal(again, after_expected)
    assert CountingRelease.calls == 0  # ... hit the entry stored for the new files


def test_a_rewrite_that_keeps_size_and_mtime_still_gives_the_new_answer(tmp_path, cache):
    # cp -p / rsync -t of another release over this one: sizes can match and mtimes are copied
    folder = make_toy_release(tmp_path / "rel")
    path = folder / "synapses.parquet"
    plain = dict(index=False, compression=None, use_dictionary=False)  # fixed-width values: swaps keep the size
    syn = pd.read_parquet(path)
    syn.to_parquet(path, **plain)
    ds = make(folder, cache)
    before = ds.get_synapses([101])
    stat = path.stat()
    rows = syn.index[(syn["pre"] == 101) & ~syn["post"].isin([0, 101])][:2]  # two rows get_synapses returns
    syn.loc[rows, "pre_x"] = syn.loc[rows[::-1], "pre_x"].to_numpy()  # two values swapped
    syn.to_parquet(path, **plain)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    expected = uncached(folder).get_synapses([101])
    assert not expected["pre_x"].equals(before["pre_x"])
    pd.testing.assert_frame_equal(ds.get_synapses([101]), expected)


def test_a_manifest_change_gives_new_keys(tmp_path, cache):
    folder = make_toy_release(tmp_path / "rel")
    backend = ReleaseBackend(folder)
    before = backend.cache_identity(None)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["description"] += " (edited)"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert backend.cache_identity(None) != before
    assert ReleaseBackend(folder).cache_identity(None) == backend.cache_identity(None)


def test_an_answer_fetched_while_the_files_changed_is_not_stored(tmp_path, cache):
    # partner_types=False: the counts below are of the table's own backend call (the partner
    # columns' neuron lookup is another call and entry, tested in tests/test_partners.py)
    folder = make_toy_release(tmp_path / "rel")

    class ChangingRelease(CountingRelease):
        def get_synapses(self, query):
            out = super().get_synapses(query)
            if type(self).calls == 1:
                _shift_synapses(folder)  # the data changes while the first answer is being fetched
            return out

    ds = make(folder, cache, ChangingRelease)
    ds.get_synapses([101], partner_types=False)
    assert len(cache) == 0
    pd.testing.assert_frame_equal(ds.get_synapses([101], partner_types=False),
                                  uncached(folder).get_synapses([101], partner_types=False))
