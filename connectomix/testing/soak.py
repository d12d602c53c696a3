"""A soak test: many mixed queries from concurrent callers must equal the single-threaded answers."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

__all__ = ["mixed_queries", "run_soak"]

Query = tuple[str, Callable[[], pd.DataFrame]]


def mixed_queries(ds, ids: Sequence[int], *, n: int = 40, seed: int = 0, rois: Sequence[str] = ()) -> list[Query]:
    """``n`` distinct (name, call) pairs mixing neuron, connectivity and synapse queries over ``ids``."""
    rng = random.Random(seed)
    out: list[Query] = []
    for k in range(n):
        sub = sorted(rng.sample(list(ids), rng.randint(1, min(4, len(ids)))))
        kind = k % 4
        if kind == 0:
            out.append((f"neurons {sub}", lambda s=sub: ds.fetch_neurons(s).neurons))
        elif kind == 1:
            w = rng.randint(1, 4)
            out.append((f"edges {sub} >= {w}",
                        lambda s=sub, w=w: ds.get_connectivity(sources=s, min_weight=w, progress=False)))
        elif kind == 2 and rois:
            out.append((f"by roi {sub}", lambda s=sub: ds.get_connectivity(targets=s, by_roi=True, progress=False)))
        else:
            side = rng.choice(["pre", "post", "both"])
            out.append((f"synapses {sub} {side}", lambda s=sub, side=side: ds.get_synapses(
                s, pre=side != "post", post=side != "pre", progress=False)))
    return out


def run_soak(queries: Sequence[Query], *, calls: int = 1000, workers: int = 10, seed: int = 1) -> int:
    """Run ``calls`` queries drawn from ``queries`` on ``workers`` threads; compare with serial answers.

    Returns the number of calls checked; raises ``AssertionError`` naming the first mismatch.
    """
    expected = {name: fn() for name, fn in queries}
    rng = random.Random(seed)
    plan = [queries[rng.randrange(len(queries))] for _ in range(calls)]

    def run(item: Query) -> tuple[str, pd.DataFrame]:
        name, fn = item
        return name, fn()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for name, got in pool.map(run, plan):
            want = expected[name]
            if not (got.shape == want.shape and got.reset_index(drop=True).equals(want.reset_index(drop=True))):
                raise AssertionError(f"concurrent answer differs from the serial one for {name}")
    return len(plan)
