"""``compare.dataset_for``: one way to use a dataset given by name or as a Dataset in the comparison functions.

``compare``, ``fetch_keys`` and ``compare_types`` open datasets given by name
(and close them, also when something fails), use given Datasets as they are
(never closing them: the caller owns them), and name the dataset in a note on
any error. Opening is recorded by wrapping ``compare.connectomix_open``.
"""

import importlib

import pytest

import connectomix
from connectomix import errors
from connectomix.compare import dataset_for
from connectomix.comparative import compare_types, fetch_keys

compare_module = importlib.import_module("connectomix.compare")  # connectomix.compare is also the function


@pytest.fixture
def opened(monkeypatch):
    """The Datasets opened by name so far, each with ``closed`` set when it is closed."""
    made = []
    real = compare_module.connectomix_open

    def record(name):
        ds = real(name)
        ds.closed = False
        close = ds.close

        def closing():
            ds.closed = True
            close()

        ds.close = closing
        made.append(ds)
        return ds

    monkeypatch.setattr(compare_module, "connectomix_open", record)
    return made


@pytest.fixture
def uri(toy_release, tmp_path, monkeypatch):
    # datasets opened by name use the default cache: a folder of this test's own, so that no other test of
    # the session is answered from what these put there
    monkeypatch.setenv("CONNECTOMIX_CACHE_DIR", str(tmp_path / "cache"))
    return f"release://{toy_release}"


def notes(exc):
    return " ".join(getattr(exc, "__notes__", []))


def test_a_name_is_opened_and_closed_a_dataset_is_left_open(opened, uri):
    with dataset_for("a", uri, "a test") as ds:
        assert ds.get_synapses([101]).shape[0] > 0
    assert [d.closed for d in opened] == [True]
    with connectomix.open(uri) as mine:
        with dataset_for("a", mine, "a test") as ds:
            assert ds is mine
        assert mine.get_synapses([101]).shape[0] > 0  # still open
    assert len(opened) == 1  # nothing opened for a given Dataset


def test_errors_inside_are_noted_and_the_dataset_closed(opened, uri):
    with pytest.raises(errors.IdsNotFoundError) as info:
        with dataset_for("hb", uri, "a test") as ds:
            ds.get_synapses([101, 999999])
    assert "(while querying dataset 'hb' in a test)" in notes(info.value)
    assert [d.closed for d in opened] == [True]
    with pytest.raises(errors.IdsNotFoundError) as info:
        with dataset_for("hb", uri) as ds:  # no 'where': the block's errors are not about this dataset
            ds.get_synapses([101, 999999])
    assert notes(info.value) == "" and [d.closed for d in opened] == [True, True]


def test_a_dataset_that_cannot_be_opened_is_named():
    with pytest.raises(errors.DatasetNotFoundError) as info:
        with dataset_for("fw", "no-such-dataset"):
            pass
    assert "(while opening dataset 'fw')" in notes(info.value)


def test_compare_closes_what_it_opened_also_on_errors(opened, uri):
    with pytest.raises(errors.IdsNotFoundError) as info:
        connectomix.compare({"ok": uri, "bad": uri}, "get_connectivity", sources=[101, 999999], max_workers=1)
    assert "in connectomix.compare)" in notes(info.value)
    assert opened and all(d.closed for d in opened)


def test_fetch_keys_closes_what_it_opened_also_on_errors(opened, uri):
    with pytest.raises(errors.IdsNotFoundError) as info:
        fetch_keys({"a": uri}, ["a:999999"])
    assert "(while querying dataset 'a' in connectomix.fetch_keys)" in notes(info.value)
    assert [d.closed for d in opened] == [True]


def test_compare_types_closes_every_dataset_it_opened_when_a_later_one_cannot_be_opened(opened, uri):
    # the datasets were opened one after the other before any was used: a failure to open the second
    # left the first open
    with pytest.raises(errors.DatasetNotFoundError) as info:
        compare_types({"a": uri, "b": "no-such-dataset"}, type="KC")
    assert "(while opening dataset 'b')" in notes(info.value)
    assert len(opened) == 1 and opened[0].closed


def test_compare_types_names_the_dataset_whose_query_failed(opened, uri, toy_release):
    with connectomix.open(uri) as mine:
        with pytest.raises(errors.IdsNotFoundError) as info:
            compare_types({"a": uri, "b": mine}, ids=["a:101", "b:999999"])
        note = notes(info.value)
        assert "dataset 'b' in connectomix.compare_types" in note and "dataset 'a'" not in note
        assert [d.closed for d in opened] == [True]
        assert mine.get_synapses([101]).shape[0] > 0  # the caller's Dataset is still open
