"""A morphology gap is a neuron the dataset has without a skeleton/mesh; an id that is not a root at the
pinned version is a wrong id for that version and raises whatever ``missing`` says (CAVE's ``missing_ids``
answers for the dataset, not the version, so the helper must not treat such an id as a gap)."""

import numpy as np
import pytest

from connectomix.errors import IdsNotFoundError, MaterializationError
from connectomix.gaps import morphology_with_gaps


def _fetch_raising(error):
    def fetch(ids):
        raise error
    return fetch


@pytest.mark.parametrize("missing", ["raise", "warn", "skip"])
def test_outdated_root_raises_for_every_missing_mode(missing):
    err = MaterializationError("id 7 is not a root at materialization 783", ids=[7])
    with pytest.raises(MaterializationError, match="783"):
        morphology_with_gaps(_fetch_raising(err), np.array([7, 8]), missing, dataset="flywire",
                             not_in_dataset=lambda ids: [])


def test_plain_gap_is_still_skipped():
    calls = []

    def fetch(ids):
        calls.append(list(ids))
        if 7 in ids:
            raise IdsNotFoundError("no skeleton for 7", ids=[7])
        return list(ids)

    out = morphology_with_gaps(fetch, np.array([7, 8]), "skip", dataset="d", not_in_dataset=lambda ids: [])
    assert out == [8] and calls == [[7, 8], [8]]
