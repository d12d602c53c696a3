"""The neuPrint backend against the neuPrint emulator: errors, faults, skeletons, hostile input, secrecy."""

import json
import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connectomix
from connectomix import NC, errors
from connectomix.http import RetryPolicy
from connectomix.testing import HOSTILE_TYPE, make_toy_release

TOKEN = "np-backend-token-123"
EXPIRED = "np-expired-token"
FORBIDDEN = "np-forbidden-token"
DATASET = "toy:v1"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_release(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def emu(toy):
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(toy, token=TOKEN, dataset=DATASET, expired_tokens=[EXPIRED],
                          forbidden_tokens={DATASET: [FORBIDDEN]}) as emu:
        yield emu


def open_np(emu, token=TOKEN, dataset=DATASET, **options):
    host = emu.url.split("://", 1)[1]
    options.setdefault("cache", False)
    return connectomix.open(f"neuprint://{host}/{dataset}", token=token, verify=str(emu.cert_path), **options)


@pytest.fixture
def ds(emu):
    emu.faults.clear()
    with open_np(emu) as ds:
        ds.backend.http.retry = RetryPolicy(base_delay=0.01, max_delay=0.05, total_timeout=20)
        yield ds
    emu.faults.clear()


def test_invalid_and_expired_tokens_get_new_token_advice(emu):
    for token in ("wrong-token", EXPIRED):
        with pytest.raises(errors.AuthenticationError, match="401.*Get a new token from https://127.0.0.1"):
            open_np(emu, token=token)


def test_forbidden_token_gets_access_advice(emu):
    with pytest.raises(errors.AuthorizationError, match="403.*a new token will not help"):
        open_np(emu, token=FORBIDDEN)


def test_missing_token(emu, monkeypatch):
    monkeypatch.delenv("NEUPRINT_APPLICATION_CREDENTIALS", raising=False)
    host = emu.url.split("://", 1)[1]
    with pytest.raises(errors.AuthenticationError, match="no neuPrint token"):
        connectomix.open(f"neuprint://{host}/{DATASET}", verify=str(emu.cert_path))
    monkeypatch.setenv("NEUPRINT_APPLICATION_CREDENTIALS", '{"token": "%s"}' % TOKEN)
    with connectomix.open(f"neuprint://{host}/{DATASET}", verify=str(emu.cert_path), cache=False) as ds:
        assert ds.version == DATASET


def test_unknown_dataset_lists_the_available_ones(emu):
    with pytest.raises(errors.DatasetNotFoundError, match="no dataset 'toy:v2'.*'toy:v1'"):
        open_np(emu, dataset="toy:v2")


def test_unknown_body_and_malformed_criteria(ds):
    with pytest.raises(errors.IdsNotFoundError, match="123456789"):
        ds.get_synapses([101, 123456789])
    with pytest.raises(errors.InvalidRegexError):
        ds.fetch_neurons(type="*KC", regex=True)
    with pytest.raises(errors.UnknownROIError, match="did you mean 'C\\(R\\)'"):
        ds.fetch_neurons(rois=["C(r)"])


def test_server_side_errors_keep_the_server_message(ds, emu):
    emu.faults.timeout_next(1)
    with pytest.raises(errors.RequestTimeoutError, match="Timeout experienced"):
        ds.fetch_neurons(type="KC")
    emu.faults.fail_next(1, 400, body={"error": "Neo.ClientError.Statement.SyntaxError: boom"})
    with pytest.raises(errors.QueryError, match="SyntaxError: boom") as err:
        ds.get_connectivity(sources=[101])
    assert "MATCH" in err.value.query


def test_faults_are_retried_and_results_identical(ds, emu):
    expected = ds.get_connectivity(sources=[101, 102, 103], batch_size=1, progress=False)
    emu.faults.fail_next(3, 503)
    assert ds.get_connectivity(sources=[101, 102, 103], batch_size=1, progress=False).equals(expected)
    emu.faults.reset_next(2)
    assert ds.get_connectivity(sources=[101, 102, 103], batch_size=1, progress=False).equals(expected)
    emu.faults.stall_next(1, seconds=0.5)
    assert ds.get_connectivity(sources=[101, 102, 103], batch_size=1, progress=False).equals(expected)


def test_retry_budget(ds, emu):
    ds.backend.http.retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    emu.faults.fail_next(50, 503)
    with pytest.raises(errors.ServerError, match="gave up after 3 attempt"):
        ds.get_connectivity(sources=[101])


def test_skeletons_in_nm(ds, toy):
    import navis

    sk = ds.get_skeletons([101])
    expected = navis.read_swc(toy / "skeletons" / "101.swc")
    np.testing.assert_allclose(sk[0].nodes.sort_values("node_id")[["x", "y", "z"]].to_numpy(),
                               expected.nodes.sort_values("node_id")[["x", "y", "z"]].to_numpy(), atol=1e-6)
    with pytest.raises(errors.IdsNotFoundError):
        ds.get_skeletons([104])


def test_hostile_type_round_trips(ds):
    assert ds.fetch_neurons(type=HOSTILE_TYPE).neurons["id"].tolist() == [110]


_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), min_codepoint=1), max_size=40)
_hostile = st.one_of(_texts, st.sampled_from([
    "' OR 1=1 //", "\\' OR true //", "}) MATCH (n) DETACH DELETE n //", "x`) RETURN n //", "KC' OR n.type='LN",
    "\\\\", "'", "`", "\n", "KC\\", "KC'", HOSTILE_TYPE[:-1], "MATCH (n) RETURN n", ".*",
]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_hostile, field=st.sampled_from(["type", "instance", "status"]), regex=st.booleans())
def test_hostile_strings_never_do_more_than_asked(ds, toy, text, field, regex):
    import re

    import pandas as pd

    truth = pd.read_parquet(toy / "neurons.parquet")
    truth = truth[truth["is_neuron"] & (truth["id"] != 0)]  # id 0 (background) is never returned
    try:
        got = ds.fetch_neurons(**{field: text, "regex": regex and field != "status"}, omit_rois=True).neurons
    except errors.InvalidArgumentError:
        # a clear refusal is acceptable only for an empty string or an invalid/non-portable regex
        assert text == "" or (regex and field != "status")
        return
    values = truth[field].fillna("")
    if regex and field != "status":
        expected = truth[values.map(lambda v: re.fullmatch(text, v) is not None)]
    else:
        expected = truth[values == text]
    assert got["id"].tolist() == expected["id"].tolist()
    assert len(ds.fetch_neurons(type="KC", omit_rois=True).neurons) == 3  # the graph is unchanged


def test_token_never_in_reprs_errors_logs_or_cache(emu, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    with open_np(emu, cache=str(tmp_path / "cache")) as ds:
        texts += [repr(ds), repr(ds.backend), repr(ds.backend.http), str(ds.info)]
        ds.get_connectivity(sources=[101])
        ds.get_synapses([101])
    with pytest.raises(errors.AuthenticationError) as exc:
        open_np(emu, token="bad-" + TOKEN)
    texts += [str(exc.value), repr(exc.value)]
    texts.append(caplog.text)
    assert not any(TOKEN in t for t in texts)
    blobs = [p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert blobs and not any(TOKEN.encode() in b for b in blobs)


def test_arrow_and_json_endpoints_agree(emu):
    with open_np(emu) as fast, open_np(emu, arrow="false") as plain:
        assert fast.backend.use_arrow and not plain.backend.use_arrow
        for call in (lambda d: d.fetch_neurons(type="(KC|PN_a)", regex=True),
                     lambda d: d.get_connectivity(sources=[101, 102, 103], by_roi=True),
                     lambda d: d.get_connectivity(sources=[101], targets=[102]),
                     lambda d: d.get_synapses([101])):
            a, b = call(fast), call(plain)
            a = a.neurons if hasattr(a, "neurons") else a
            b = b.neurons if hasattr(b, "neurons") else b
            assert a.equals(b)
        emu.stats.reset()
        fast.get_connectivity(sources=[101], partner_types=False)
        assert emu.stats.requests("POST /api/custom/arrow") >= 1
        assert emu.stats.requests("POST /api/custom/custom") == 0
        emu.stats.reset()
        fast.fetch_neurons([101])  # lookups read JSON: node properties can be null (NeuprintBackend.run)
        assert emu.stats.requests("POST /api/custom/arrow") == 0
        assert fast.get_connectivity(sources=[104], targets=[109], min_weight=50).empty  # empty result


def test_split_roi_info_spreads_primary_rois_and_keeps_the_remainder():
    import pandas as pd
    from connectomix_neuprint.backend import split_roi_info

    info = pd.Series([
        '{"AL(R)": {"pre": 3, "post": 1}, "AL-sub": {"pre": 2}, "LH(R)": {"post": 4}}',
        None,                                 # no roiInfo: everything is outside the primary ROIs
        '{"AL(R)": {"pre": 0, "post": 0}}',   # zero counts are dropped
        '{"LH(R)": {"pre": 9}}',              # roiInfo above the total: the remainder clips at 0
    ], dtype=object)
    pre = pd.Series([5, 2, 0, 7])
    post = pd.Series([5, None, 0, 0], dtype=object)
    out = split_roi_info(info, {"pre": ("pre", pre), "post": ("post", post)}, {"AL(R)", "LH(R)"})
    assert out.to_dict("list") == {
        "row": [0, 0, 0, 1, 3],
        "roi": ["AL(R)", "LH(R)", connectomix.schema.NOT_PRIMARY, connectomix.schema.NOT_PRIMARY, "LH(R)"],
        "pre": [3, 0, 2, 2, 9],
        "post": [1, 4, 0, 0, 0],
    }
    # decoded maps (as Arrow delivers them) give the same answer as JSON text
    decoded = info.map(lambda s: json.loads(s) if isinstance(s, str) else None)
    again = split_roi_info(decoded, {"pre": ("pre", pre), "post": ("post", post)}, {"AL(R)", "LH(R)"})
    pd.testing.assert_frame_equal(out, again)
