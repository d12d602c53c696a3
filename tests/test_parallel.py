import threading

import numpy as np
import pytest

from connectomix.parallel import batched, map_batches


def test_results_in_input_order_and_bounded_concurrency():
    active, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def work(b):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        release.wait(0.05)
        with lock:
            active[0] -= 1
        return [x * 2 for x in b]

    out = map_batches(work, batched(list(range(40)), 3), max_workers=4)
    assert [x for b in out for x in b] == [x * 2 for x in range(40)]
    assert 1 < peak[0] <= 4


def test_first_error_propagates_and_nothing_partial_is_returned():
    def work(b):
        if 7 in b:
            raise ValueError("batch with 7 failed")
        return b

    with pytest.raises(ValueError, match="batch with 7"):
        map_batches(work, batched(np.arange(20), 2), max_workers=3)


def test_batched_rejects_zero():
    with pytest.raises(ValueError):
        batched([1], 0)
