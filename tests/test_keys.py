"""Cross-dataset keys ``"<dataset>:<id>"`` (coconatfly's convention) are accepted wherever a Dataset takes ids."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import connectomix
from connectomix import errors

A, B = 1734350788, 722817260  # two of the sample's real DA1 lPNs


@pytest.fixture(scope="module")
def ds():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield connectomix.open("sample", cache=False)


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


@pytest.mark.parametrize("keys", [f"sample:{A} sample:{B}", [f"sample:{A}", f"sample:{B}"],
                                  pd.Series([f"sample:{B}", f"sample:{A}"]),
                                  f"hemibrain-olfactory-sample:{A},sample:{B}"])
def test_keys_select_the_same_rows_as_ids(ds, keys):
    pd.testing.assert_frame_equal(quiet(ds.fetch_neurons, keys).neurons, quiet(ds.fetch_neurons, [A, B]).neurons)
    pd.testing.assert_frame_equal(quiet(ds.get_connectivity, sources=keys), quiet(ds.get_connectivity, sources=[A, B]))
    pd.testing.assert_frame_equal(quiet(ds.get_connectivity, targets=keys), quiet(ds.get_connectivity, targets=[A, B]))
    pd.testing.assert_frame_equal(quiet(ds.get_synapses, keys), quiet(ds.get_synapses, [A, B]))
    assert sorted(int(n.id) for n in quiet(ds.get_skeletons, keys)) == sorted([A, B])


def test_a_key_of_another_dataset_is_refused_never_read_as_an_id(ds):
    with pytest.raises(errors.InvalidArgumentError, match=r"'fw:1734350788'.*'sample'"):
        ds.get_connectivity(sources=f"fw:{A}")
    with pytest.raises(errors.InvalidArgumentError, match="fw"):
        ds.fetch_neurons([f"sample:{A}", f"fw:{B}"])


def test_keys_and_bare_strings_do_not_mix_and_missing_ids_still_raise(ds):
    with pytest.raises(errors.InvalidIdError, match="'123'"):
        ds.get_synapses([f"sample:{A}", "123"])
    with pytest.raises(errors.IdsNotFoundError, match="99"):
        ds.get_connectivity(sources="sample:99")


def test_zero_dimensional_arrays_are_ids_as_before(ds):
    """Found by test_bad_input's property test: np.array(5) has no len(); it is an id like 5, not keys."""
    import numpy as np

    pd.testing.assert_frame_equal(quiet(ds.fetch_neurons, np.array(A)).neurons, quiet(ds.fetch_neurons, A).neurons)
    with pytest.raises(errors.InvalidIdError):
        ds.fetch_neurons(np.array("sample:1"))
