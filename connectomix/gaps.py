"""Per-neuron gaps in a dataset: neurons it has, but without some kind of data.

Every gap is reported the same way: a :class:`~connectomix.errors.MissingDataWarning`
naming the ids (``w.ids``, ``w.what``), or an
:class:`~connectomix.errors.IdsNotFoundError` where the caller asked for that:

* a backend that holds no skeleton (or mesh) for some neurons: ``get_skeletons(ids,
  missing="raise" | "warn" | "skip")``, ``get_meshes(ids, missing=...)``;
* a release folder that declares, in ``manifest.json`` ``"partial"``, neurons
  without per-ROI counts or with only part of their synapses (the embedded
  sample's real PNs other than the five DA1 lPNs have only their totals):
  ``fetch_neurons`` warns when it returns such neurons without ``roi_counts``
  rows, and when ROI criteria leave out neurons that meet every other
  criterion but cannot be placed in ROIs; ``get_connectivity`` and
  ``get_synapses`` warn when asked about neurons whose synapses are partial.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np

from .errors import IdsNotFoundError, InvalidArgumentError, MaterializationError, MissingDataWarning

__all__ = ["MISSING_CHOICES", "check_missing", "morphology_with_gaps", "skeletons_with_gaps", "partial_ids",
           "warn_roi_gaps", "warn_partial_synapses"]

#: What ``get_skeletons(missing=...)`` does with neurons the dataset has but holds no skeleton for.
MISSING_CHOICES = ("raise", "warn", "skip")
_PLURAL = {"mesh": "meshes"}


def _shown(ids: Any) -> str:
    ids = [int(i) for i in ids]
    return ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def check_missing(missing: Any) -> str:
    """Validate a ``missing=`` argument (one of :data:`MISSING_CHOICES`)."""
    if not isinstance(missing, str) or missing not in MISSING_CHOICES:
        raise InvalidArgumentError(f"missing must be one of {list(MISSING_CHOICES)}; got {missing!r}")
    return missing


def morphology_with_gaps(fetch: Any, ids: np.ndarray, missing: str, *, dataset: str, not_in_dataset: Any,
                         what: str = "skeleton") -> Any:
    """``fetch(ids)`` (a backend's ``get_skeletons``/``get_meshes``), reporting neurons without one per ``missing``.

    ``what`` (``"skeleton"``, ``"mesh"``) names the kind of data in messages and in the warning's ``what``.
    A backend raises :class:`~connectomix.errors.IdsNotFoundError` naming the
    ids it has no skeleton (mesh) for. With ``missing="raise"`` that error is raised
    (saying how to get the others); with ``"warn"``/``"skip"`` those ids are
    left out -- with one :class:`~connectomix.errors.MissingDataWarning` naming
    them for ``"warn"`` -- and the rest fetched. Ids the dataset does not have
    at all (``not_in_dataset(ids)`` returns them) always raise: that is a wrong
    id, not a gap in the data.
    """
    import navis

    ids = np.asarray(ids, dtype="int64")
    gaps: list[int] = []
    while True:  # each round leaves out at least one id, so this ends
        try:
            skeletons = fetch(ids) if len(ids) else navis.NeuronList([])
            break
        except MaterializationError:
            raise  # ids that are not roots at this version: a wrong id for the version, never a gap in the data
        except IdsNotFoundError as exc:
            lacking = np.asarray(exc.ids if exc.ids is not None else [], dtype="int64")
            unknown = np.asarray(not_in_dataset(lacking), dtype="int64") if len(lacking) else lacking
            if len(unknown):
                raise IdsNotFoundError(f"x: {len(unknown)} id(s) not found in dataset {dataset!r}: "
                                       f"{_shown(unknown)}", ids=unknown) from None
            if missing == "raise" or not len(lacking) or not np.isin(lacking, ids).all():
                others = _PLURAL.get(what, what + "s")
                raise IdsNotFoundError(f"{exc} (missing='warn' or 'skip' returns the other {others})",
                                       ids=exc.ids) from None
            gaps += lacking.tolist()
            ids = ids[~np.isin(ids, lacking)]
    if gaps and missing == "warn":
        warnings.warn(MissingDataWarning(
            f"dataset {dataset!r} has no {what} for {len(gaps)} of the {len(gaps) + len(ids)} neurons asked: "
            f"{_shown(gaps)}; they are left out (missing='skip' leaves them out silently, 'raise' raises)",
            ids=gaps, what=what), stacklevel=4)
    return skeletons


#: The skeleton case of :func:`morphology_with_gaps` (its earlier name).
skeletons_with_gaps = morphology_with_gaps


def partial_ids(info: Any, what: str) -> tuple[np.ndarray, str]:
    """Ids a dataset declares it lacks ``what`` for (``info.extra["partial"][what]``), and why."""
    entry = ((getattr(info, "extra", None) or {}).get("partial") or {}).get(what) or {}
    return np.asarray(entry.get("ids", []), dtype="int64"), str(entry.get("reason", ""))


def warn_roi_gaps(ds: Any, crit: Any, neurons: Any, version: Any, *, omit_rois: bool) -> None:
    """Warn about neurons without per-ROI counts that ``fetch_neurons`` returned, or that ROI criteria left out.

    Neurons the dataset declares without per-ROI counts (see
    :func:`partial_ids`) have no ``roi_counts`` rows, so ROI criteria never
    match them. The warning names those that meet every other criterion.
    """
    from .criteria import NeuronCriteria
    from .dataset import _criteria_mask

    gap_ids, reason = partial_ids(ds.info, "roi_counts")
    if not len(gap_ids):
        return
    why = f" ({reason})" if reason else ""
    if crit.all_rois:
        candidates = gap_ids if crit.ids is None else np.intersect1d(gap_ids, np.asarray(crit.ids, dtype="int64"))
        if not len(candidates) or crit.matches_nothing:
            return
        others = copy.copy(crit)  # the same criteria without the ROI conditions, on the gap ids only
        for field in ("rois", "input_rois", "output_rois"):
            object.__setattr__(others, field, None)
        object.__setattr__(others, "ids", tuple(int(i) for i in candidates))
        table = ds._neuron_table(ds.backend.fetch_neurons(others, version))
        left_out = table["id"].to_numpy()[_criteria_mask(table, others, ds.name)]
        if len(left_out):
            warnings.warn(MissingDataWarning(
                f"dataset {ds.name!r} has no per-ROI counts for {len(left_out)} neuron(s) that meet the other "
                f"criteria, so the ROI criteria {list(crit.all_rois)} cannot match them and they are left out: "
                f"{_shown(left_out)}{why}", ids=left_out, what="roi_counts"), stacklevel=4)
    elif not omit_rois:
        lacking = neurons["id"].to_numpy()[np.isin(neurons["id"].to_numpy(), gap_ids)]
        if len(lacking):
            warnings.warn(MissingDataWarning(
                f"dataset {ds.name!r} has no per-ROI counts for {len(lacking)} of the {len(neurons)} neurons "
                f"returned, so roi_counts has no rows for them: {_shown(lacking)}{why}",
                ids=lacking, what="roi_counts"), stacklevel=4)


def warn_partial_synapses(ds: Any, ids: Any) -> None:
    """Warn when some of ``ids`` are neurons whose synapses the dataset declares incomplete (see :func:`partial_ids`).

    Their rows in synapse and connectivity tables are then only part of their synapses (in the embedded
    sample: the synthetic connections in which they were drawn as partners of the five DA1 lPNs).
    """
    if ids is None:
        return
    gap_ids, reason = partial_ids(ds.info, "synapses")
    asked = np.unique(np.asarray(ids, dtype="int64"))
    lacking = asked[np.isin(asked, gap_ids)] if len(gap_ids) else asked[:0]
    if len(lacking):
        why = f" ({reason})" if reason else ""
        warnings.warn(MissingDataWarning(
            f"dataset {ds.name!r} holds only part of the synapses of {len(lacking)} of the neurons asked, so their "
            f"rows here are not all of their synapses: {_shown(lacking)}{why}",
            ids=lacking, what="synapses"), stacklevel=4)
