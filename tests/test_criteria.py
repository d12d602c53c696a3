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


def test_id_columns_of_every_client_are_read_and_the_argument_is_named():
    assert parse_ids(pd.DataFrame({"id": [3, 1]})).tolist() == [1, 3]
    assert parse_ids(pd.DataFrame({"root_id": [720575940603231916]})).tolist() == [720575940603231916]
    assert parse_ids(pd.DataFrame({"bodyId": [2], "x": [9]})).tolist() == [2]
    with pytest.raises(InvalidIdError, match="^sources must be non-negative integers"):
        parse_ids(pd.DataFrame({"id": ["x"]}), what="sources")
    with pytest.raises(InvalidIdError, match="^targets: a DataFrame needs an 'id', 'bodyId' or 'root_id' column"):
        parse_ids(pd.DataFrame({"ID": [1]}), what="targets")

    class Neuron:
        id = "y"

    with pytest.raises(InvalidIdError, match="^x must be non-negative integers"):
        parse_ids(Neuron(), what="x")
    with pytest.raises(InvalidIdError, match="^ids must be non-negative integers"):
        parse_ids(["z"])


def test_id_range_and_bytes():
    top = np.iinfo("int64").max
    assert parse_ids([0, top, "0", str(top)]).tolist() == [0, top]
    assert parse_ids(b"12").tolist() == [12] and parse_ids([b" 7 "]).tolist() == [7]
    assert parse_ids(np.array(5)).tolist() == [5] and parse_ids(np.int32(6)).tolist() == [6]
    for bad in (b"\xff1", b"1\xd9\xa1", top + 1, str(top + 1), -1, "-1"):
        with pytest.raises(InvalidIdError):
            parse_ids(bad)


def test_criteria_defaults_and_copies():
    c = NC()
    assert (c.min_pre, c.min_post, c.min_roi_inputs, c.min_roi_outputs) == (0, 0, 1, 1)
    assert (c.roi_req, c.regex, c.label, c.ids, c.type, c.rois) == ("all", False, "neuron", None, None, None)
    assert repr(c) == "NeuronCriteria()" and NC(min_pre=0, min_roi_inputs=1) == c
    assert NC(roi_req="any").roi_req == "any" and NC(regex=True).regex is True
    top = np.iinfo("int64").max
    assert NC(min_pre=top, min_post=np.int64(3)).min_post == 3
    for bad in (top + 1, True, 1.5, -1):
        with pytest.raises(InvalidArgumentError, match="^min_pre must be a non-negative integer"):
            NC(min_pre=bad)
    c = NC(type="x", status=["S"], min_pre=3, rois=["A"], roi_req="any", label="segment")
    d = c.with_ids([2, 1])
    assert d.ids == (1, 2) and (d.type, d.status, d.min_pre, d.rois, d.roi_req, d.label) == (
        ("x",), ("S",), 3, ("A",), "any", "segment")
    assert NC(type="x").with_ids([1]).label == "neuron"  # the label rule is kept as it was


def test_empty_alternatives_match_nothing_but_empty_roi_lists_are_refused():
    for field in ("type", "instance", "status"):
        c = NC(**{field: []})
        assert getattr(c, field) == () and c.matches_nothing
    assert NC(ids=[]).matches_nothing and not NC(type="x").matches_nothing
    for field in ("rois", "input_rois", "output_rois"):
        with pytest.raises(InvalidArgumentError, match=f"^{field}=\\[\\] is ambiguous"):
            NC(**{field: []})


def test_messages_name_the_field():
    with pytest.raises(InvalidArgumentError, match="^instance must be a string or a list of strings"):
        NC(instance=5)
    with pytest.raises(InvalidArgumentError, match="^status must contain non-empty strings"):
        NC(status=[""])
    with pytest.raises(InvalidRegexError, match="^instance='\\(' is not a valid regular expression"):
        NC(instance="(", regex=True)
    with pytest.raises(InvalidArgumentError, match="^roi_req must be 'all' or 'any'"):
        NC(roi_req="ANY")


def test_all_rois_and_ids_only():
    c = NC(rois=["B", "A"], input_rois=["A", "C"], output_rois=["D"])
    assert c.all_rois == ("B", "A", "C", "D")
    assert NC(ids=[1]).is_ids_only and not NC(ids=[1], type="x").is_ids_only and not NC().is_ids_only
    assert not NC(ids=[1], label="neuron").is_ids_only


def test_connection_count_defaults_and_unknown_fields():
    c = NC()
    assert (c.min_upstream, c.min_downstream) == (0, 0)
    with pytest.raises(InvalidArgumentError, match=r"^unknown criteria field\(s\) \['foo', 'zap'\]; valid: "):
        NC(**{"class": "KC", "zap": 1, "foo": 2})
    assert NC(**{"class": "KC"}) == NC(class_="KC")
