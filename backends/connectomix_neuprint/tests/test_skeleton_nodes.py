"""neuPrint's JSON skeleton table decoded straight into an array (morphology.skeleton_nodes)."""

import pytest
import requests

from connectomix import errors
from connectomix_neuprint.morphology import skeleton_nodes


def response(body: bytes) -> requests.Response:
    r = requests.Response()
    r._content, r.status_code, r.url = body, 200, "https://np.example/api/skeletons/skeleton/ds/7"
    return r


def test_columns_in_any_order_come_back_in_the_fixed_order():
    body = b'{"columns": ["link", "x", "y", "z", "radius", "rowId"], "data": [[-1, 8, 16, 24, 2.5, 1], [1, 9, 17, 25, 2, 2]]}'
    assert skeleton_nodes(response(body)).tolist() == [[1, 8, 16, 24, 2.5, -1], [2, 9, 17, 25, 2, 1]]


@pytest.mark.parametrize("body", [
    b'{"columns": ["rowId", "x", "y", "z", "radius", "link"], "data": [[1, 8, 16, 24, 2.5, -1], [2, 9, 16',
    b'{"columns": ["rowId", "x", "y", "z", "radius", "link"], "data": [[1, 8, 16, 24, 2.5, -1], [2, 9, 16]]}',
])
def test_a_cut_body_or_a_short_row_is_incomplete(body):
    with pytest.raises(errors.IncompleteResponseError):
        skeleton_nodes(response(body))


def test_a_missing_column_or_a_null_id_is_a_server_error():
    with pytest.raises(errors.ServerError, match="lacks columns \\['radius'\\]"):
        skeleton_nodes(response(b'{"columns": ["rowId", "x", "y", "z", "link"], "data": [[1, 8, 16, 24, -1]]}'))
    with pytest.raises(errors.ServerError, match="null values in columns \\['link'\\]"):
        skeleton_nodes(response(b'{"columns": ["rowId", "x", "y", "z", "radius", "link"], '
                                b'"data": [[1, 8, 16, 24, 2.5, null]]}'))
