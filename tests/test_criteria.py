import numpy as np
import pandas as pd
import pytest

from connectomix import NeuronCriteria as NC
from connectomix.criteria import parse_ids, to_criteria
from connectomix.errors import InvalidArgumentError, InvalidIdError, InvalidRegexError


@pytest.mark.parametrize(
    "given, expected",
    [
        (5, [5]),
        ("7", [7]),
        ([3, 1, 3], [1, 3]),
        (np.array([2, 1], dtype="uint64"), [1, 2]),
        (pd.Series([10, 9]), [9, 10]),
        (pd.DataFrame({"bodyId": [4]}), [4]),
        ([720575940603231916], [720575940603231916]),
        ([1.0, 2.0], [1, 2]),
    ],
)
def test_parse_ids_accepts_common_forms(given, expected):
    out = parse_ids(given)
    assert out.dtype == np.int64 and out.tolist() == expected


@pytest.mark.parametrize("bad", ["abc", 1.5, -3, [1, "x"], True, float("nan"), None, {"a": 1}, 2**64])
def test_parse_ids_rejects_non_ids_naming_the_value(bad):
    with pytest.raises(InvalidIdError) as err:
        parse_ids(bad)
    assert "integer" in str(err.value)


def test_navis_neurons_give_their_ids():
    import navis

    nl = navis.example_neurons(2)
    assert parse_ids(nl).tolist() == sorted(int(i) for i in nl.id)
    assert parse_ids(nl[0]).tolist() == [int(nl[0].id)]


def test_label_rule():
    assert NC(ids=[1]).label == "segment"
    assert NC(type="KC").label == "neuron"
    assert NC(type="KC", label="segment").label == "segment"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"type": "(", "regex": True}, "not a valid regular expression"),
        ({"type": "a(?=b)", "regex": True}, "look-around"),
        ({"min_pre": -1}, "min_pre must be a non-negative integer; got -1"),
        ({"roi_req": "some"}, "roi_req must be 'all' or 'any'"),
        ({"rois": [""]}, "non-empty strings"),
        ({"type": 5}, "string or a list of strings"),
        ({"label": "cell"}, "label must be 'neuron' or 'segment'"),
        ({"regex": "yes"}, "regex must be True or False"),
    ],
)
def test_bad_criteria(kwargs, match):
    with pytest.raises((InvalidArgumentError, InvalidRegexError), match=match):
        NC(**kwargs)


def test_invalid_regex_is_fine_when_not_regex():
    assert NC(type="(").type == ("(",)


def test_repr_shows_only_set_fields_and_to_criteria():
    assert repr(NC(type="KC", min_pre=3)) == "NeuronCriteria(type=('KC',), min_pre=3)"
    assert to_criteria([2, 1]).ids == (1, 2)
    assert to_criteria(NC(type="x")).type == ("x",)
    with pytest.raises(InvalidArgumentError):
        to_criteria(None)
    assert NC(type="x").with_ids([3]).ids == (3,) and NC(ids=[3]).is_ids_only
