"""The contract between the connectomix core and its backends.

A backend is a class derived from :class:`Backend`, announced to connectomix
through the ``connectomix_backends`` pluggy hook (see
:mod:`connectomix.hookspecs`) by a module listed under the
``connectomix.backends`` entry-point group. First-party backends register
exactly like third-party ones.

A backend implements a few **primitives**; :class:`connectomix.Dataset`
validates input before calling them and validates, re-filters and labels their
output afterwards, so every backend has the same semantics:

* :meth:`Backend.fetch_neurons` and :meth:`Backend.fetch_roi_counts`
* :meth:`Backend.get_connectivity` -- per-ROI weights for a :class:`ConnectivityQuery`
* :meth:`Backend.get_synapses` -- synaptic connections for a :class:`SynapseQuery`
* optionally :meth:`Backend.get_skeletons` (capability ``SKELETONS``) and
  :meth:`Backend.get_meshes` (capability ``MESHES``)

Backends may push every filter of a query down to their server (and should,
for speed); the core re-applies the defining filters (thresholds, autapses,
background id 0, ROIs) afterwards, which is cheap and makes the meaning of a
query independent of the backend. Capability gaps raise
:class:`~connectomix.errors.UnsupportedOperation`.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .criteria import NeuronCriteria
from .errors import InvalidArgumentError, UnsupportedOperation

__all__ = [
    "Backend",
    "Capability",
    "DatasetInfo",
    "ScoreInfo",
    "ConnectivityQuery",
    "SynapseQuery",
    "ParsedURI",
]


class Capability(enum.Enum):
    """Optional features a backend (or one of its datasets) may have."""

    SYNAPSES = "synapses"  #: synapse-level tables
    SYNAPSE_SCORES = "synapse_scores"  #: a meaningful ``score`` column (``min_score`` works)
    ROIS = "rois"  #: per-ROI counts and weights
    SKELETONS = "skeletons"  #: :meth:`Backend.get_skeletons`
    MESHES = "meshes"  #: :meth:`Backend.get_meshes`
    MATERIALIZATION = "materialization"  #: several versions; ``materialization=`` accepted
    NEURON_SIDES = "neuron_sides"  #: connectivity can restrict a side to neurons in the query itself
    ID_UPDATES = "id_updates"  #: ids change over time; ``update_ids`` available


@dataclass(frozen=True)
class ParsedURI:
    """A dataset URI split into parts, e.g. ``neuprint://host:443/hemibrain:v1.2.1?verify=false``.

    ``location`` is everything between ``//`` and the query string, as typed;
    backends interpret it (a host and dataset, a datastack, a path).
    """

    scheme: str
    location: str
    options: Mapping[str, str]
    raw: str


@dataclass(frozen=True)
class ScoreInfo:
    """What a dataset's synapse ``score`` is, and the threshold its authors recommend.

    Attributes
    ----------
    column
        The dataset's own name of the score (``"cleft_score"``, ``"confidence"``).
    scale
        Its scale in words (``"0.0-1.0 per synapse"``, ``"integer cleft score"``).
    recommended
        The published threshold in connectomix's ``>=`` meaning (what
        ``min_score="recommended"`` keeps: ``score >= recommended``), or
        ``None`` if the dataset publishes none. A published ``> t`` on integer
        scores is ``t + 1`` here (FlyWire ``cleft_score > 50`` -> ``51``).
    op
        The operator of the rule as the source publishes it (``">"`` or ``">="``).
    source
        Where the threshold is published, and the conversion to ``>=`` if any.

    Examples
    --------
    >>> ScoreInfo("cleft_score", "integer cleft score", 51, ">", "FlyWire: cleft_score > 50 -> >= 51").recommended
    51
    """

    column: str
    scale: str
    recommended: float | None
    op: str
    source: str

    def __post_init__(self):
        if self.op not in (">", ">="):
            raise InvalidArgumentError(f"ScoreInfo.op must be '>' or '>='; got {self.op!r}")

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for ``df.attrs``)."""
        return {"column": self.column, "scale": self.scale, "recommended": self.recommended, "op": self.op,
                "source": self.source}


@dataclass(frozen=True)
class DatasetInfo:
    """What a backend reports about the dataset it is connected to.

    ``score`` describes the synapse score (``None``: the dataset has no
    scores, or the backend does not say). ``neuron_columns`` lists the
    :data:`connectomix.schema.NEURONS` columns that hold data on this dataset
    (core columns not listed are all ``<NA>``, e.g. ``pre``/``post`` on CAVE
    fly datasets), plus the native extra columns; ``None`` means every column
    the backend's neuron table returns. The core refuses criteria on columns
    the dataset does not have, naming the ones it has.
    """

    name: str
    version: Any
    rois: tuple[str, ...] = ()
    primary_rois: tuple[str, ...] = ()
    voxel_size_nm: tuple[float, float, float] | None = None
    description: str = ""
    #: Which columns of which tables are synthetic (demo data only), e.g.
    #: ``{"synapses": ["pre", "post"]}``; copied into ``df.attrs["synthetic"]``.
    synthetic: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    score: ScoreInfo | None = None
    neuron_columns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ConnectivityQuery:
    """A validated :meth:`Dataset.get_connectivity` request.

    ``sources``/``targets`` are sorted unique ``int64`` arrays or ``None``
    (any neuron; never both ``None``). ``rois`` restricts weights to those
    ROIs (``None``: all). The backend returns **per-ROI** rows
    (:data:`connectomix.schema.CONNECTIVITY_BY_ROI`) when ``by_roi`` or
    ``rois`` is set, else total weights (:data:`~connectomix.schema.CONNECTIVITY`).
    ``min_weight`` applies to the pair's weight summed over ``rois``.
    ``sources_neurons_only``/``targets_neurons_only`` (only for backends with
    :attr:`Capability.NEURON_SIDES`, and only with that side ``None``) restrict
    the side to neurons (neuPrint ``:Neuron``) inside the backend's query.
    ``check_ids`` (only for backends with :attr:`Backend.checks_connectivity_ids`, and only with one
    side given as ids, the other ``None``): the core has not checked that those ids exist; the
    backend checks them with the query's own requests and raises
    :class:`~connectomix.errors.IdsNotFoundError` naming (``.ids``) every one the dataset does not
    have (as any segment), never returning a table for them.
    """

    sources: np.ndarray | None
    targets: np.ndarray | None
    by_roi: bool = False
    rois: tuple[str, ...] | None = None
    min_weight: int = 1
    include_autapses: bool = False
    materialization: Any = None
    batch_size: int | None = None
    max_workers: int = 8
    progress: bool = False
    sources_neurons_only: bool = False
    targets_neurons_only: bool = False
    check_ids: bool = False


@dataclass(frozen=True)
class SynapseQuery:
    """A validated :meth:`Dataset.get_synapses` request.

    Return every synaptic connection whose presynaptic neuron is in ``ids``
    (if ``pre``) or whose postsynaptic neuron is in ``ids`` (if ``post``),
    once each, as :data:`connectomix.schema.SYNAPSES` rows with coordinates
    in nm.
    """

    ids: np.ndarray
    pre: bool = True
    post: bool = True
    min_score: float | None = None
    rois: tuple[str, ...] | None = None
    include_autapses: bool = False
    materialization: Any = None
    batch_size: int | None = None
    max_workers: int = 8
    progress: bool = False


_binding_lock = threading.Lock()  # Backend.bind_result_cache


class Backend:
    """Base class of connectomix backends.

    Subclasses set the class attributes and implement :meth:`from_uri`,
    :meth:`info` and the primitives. A backend instance serves one dataset and
    must be safe to call from several threads.

    Attributes
    ----------
    name
        Short backend name, e.g. ``"neuprint"``.
    schemes
        URI schemes it opens, e.g. ``("neuprint",)``.
    description
        One line for ``connectomix backends``.
    capabilities
        The :class:`Capability` set (a dataset may narrow it via
        :meth:`dataset_capabilities`).
    """

    name: ClassVar[str] = ""
    schemes: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Option names :meth:`from_uri` accepts (see :meth:`check_options`).
    OPTIONS: ClassVar[tuple[str, ...]] = ()
    #: Seconds a :class:`~connectomix.Dataset` may remember :meth:`cache_identity` of a version before
    #: asking again (0: asked on every cached query). Remote backends set it so warm cache hits send nothing.
    identity_ttl: float = 0.0
    #: Whether :meth:`fetch_neurons` takes ``counts`` (``None``/``True``/``False``) because counting is
    #: expensive on its datasets (CAVE: every synapse row). Backends that hold counts cheaply (release
    #: files, neuPrint properties) leave this ``False``: they are called without ``counts`` and always
    #: return them, so ``counts=False`` skips nothing there.
    optional_counts: ClassVar[bool] = False
    #: Whether :meth:`get_connectivity` checks the ids of a one-sided query in its own requests
    #: (``ConnectivityQuery.check_ids``), so the core sends no id check before it (one round trip less).
    checks_connectivity_ids: ClassVar[bool] = False
    #: ``(place, cache getter)`` of the Dataset using this backend (:meth:`bind_result_cache`).
    _result_cache_binding: tuple[str | None, Callable[[], Any]] | None = None

    @property
    def result_cache(self) -> Any:
        """The :class:`~connectomix.cache.ResultCache` of the Dataset using this backend, or ``None``.

        ``None`` while caching is off or no Dataset uses the backend. A backend
        may keep its own immutable intermediate tables there (CAVE: annotation
        tables per materialization; what a warm hit needs from the server).
        Bound once by :class:`~connectomix.Dataset` (:meth:`bind_result_cache`).
        """
        binding = self._result_cache_binding
        return None if binding is None else binding[1]()

    def bind_result_cache(self, place: str | None, cache: Callable[[], Any]) -> None:
        """Make ``cache()`` this backend's :attr:`result_cache`: the cache of the Dataset made on it.

        Parameters
        ----------
        place
            Where that cache is (its directory), ``None`` if the Dataset caches nothing.
        cache
            Returns the cache (which a Dataset opens on first use), or ``None``.

        Raises
        ------
        InvalidArgumentError
            The backend already serves a Dataset whose cache is elsewhere (or
            off): a backend object keeps one cache, so that one Dataset never
            writes into another's, or into a cache another was opened without.
        """
        with _binding_lock:
            bound = self._result_cache_binding
            if bound is None:
                self._result_cache_binding = (place, cache)
            elif bound[0] != place:
                def say(where: str | None) -> str:
                    return "no result cache" if where is None else f"the result cache at {where!r}"

                raise InvalidArgumentError(
                    f"this {self.name} backend object already serves a Dataset with {say(bound[0])}; a Dataset "
                    f"with {say(place)} cannot share it (each would write into the other's cache): open the "
                    "dataset again (connectomix.open) for a Dataset with another cache")

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Refuse option names the backend does not know, listing the valid ones."""
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            raise InvalidArgumentError(
                f"unknown option(s) {unknown} for the {cls.name} backend; valid options: {sorted(cls.OPTIONS)}"
            )

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_uri(cls, uri: ParsedURI, options: Mapping[str, Any]) -> Backend:
        """Open the dataset named by ``uri``; ``options`` override URI query options."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and files. Idempotent."""

    # -- metadata ---------------------------------------------------------------------

    def info(self) -> DatasetInfo:
        """Dataset name, version, ROIs, voxel size."""
        raise NotImplementedError

    def dataset_capabilities(self) -> frozenset[Capability]:
        """Capabilities of this particular dataset (default: the class's)."""
        return self.capabilities

    def cache_identity(self, version: Any) -> Mapping[str, Any] | None:
        """An identity of the data served at ``version`` *now*, for the on-disk cache; ``None`` to not cache.

        Two calls must return equal mappings only if the answers to every query
        are the same: include what tells deployments and data apart (version
        metadata, last-edit stamps, file fingerprints), not just an address.
        It is asked on every cached query (and again after a miss) unless
        :attr:`identity_ttl` lets the Dataset remember it, so keep it cheap:
        file metadata or one small metadata request. Return ``None`` for
        data that changes without such a stamp (never cache live data). Must
        not contain credentials. The default caches nothing.
        """
        return None

    def identity_scope(self) -> Mapping[str, Any] | None:
        """What this backend's cache identities depend on besides the server's answers, or ``None``.

        Server and dataset (never a token). A backend that returns a mapping lets the Dataset and
        itself keep small records in the result cache (:meth:`records`): identities of versions, id
        checks, what connecting learnt. Each is trusted for :attr:`identity_ttl` seconds after it was
        asked, in any process, so a warm hit in a new process sends nothing, and a server re-deployed
        with other data is noticed within ``identity_ttl``. The default (``None``) keeps no records.
        """
        return None

    def records(self) -> Any:
        """This backend's :class:`~connectomix.cache.DiskRecords` in its result cache, or ``None``.

        ``None`` without an :meth:`identity_scope`, without a usable :attr:`result_cache`, or with
        ``identity_ttl <= 0`` (nothing is trusted, so nothing is kept).
        """
        scope = self.identity_scope()
        cache = self.result_cache
        if scope is None or cache is None or not getattr(cache, "usable", False) or self.identity_ttl <= 0:
            return None
        from .cache import DiskRecords

        return DiskRecords(cache, {"backend": self.name, **scope})

    # -- primitives -------------------------------------------------------------------

    def fetch_neurons(self, criteria: NeuronCriteria, materialization: Any = None) -> pd.DataFrame:
        """Neurons matching ``criteria`` (:data:`connectomix.schema.NEURONS`).

        ``materialization`` is the concrete version from
        :meth:`resolve_materialization` (``None`` for unversioned backends).
        A backend with :attr:`optional_counts` also takes ``counts``: ``None``
        computes the count columns only where they are cheap or a criterion
        needs them, ``True`` always, ``False`` only for criteria; counts it did
        not compute are ``<NA>`` and ``df.attrs["counts"]`` says so.
        """
        raise NotImplementedError

    def fetch_roi_counts(self, ids: np.ndarray, materialization: Any = None) -> pd.DataFrame:
        """Per-ROI synapse counts of ``ids`` (:data:`connectomix.schema.ROI_COUNTS`)."""
        raise UnsupportedOperation(f"the {self.name} backend has no per-ROI counts")

    def missing_ids(self, ids: np.ndarray, materialization: Any = None) -> np.ndarray:
        """The subset of ``ids`` that the dataset does not have (any segment counts).

        The default asks :meth:`fetch_neurons`; versioned backends check at the
        requested materialization instead.
        """
        found = self.fetch_neurons(NeuronCriteria(ids=ids, label="segment"))["id"].to_numpy()
        return np.setdiff1d(ids, found)

    def settle_checks(self, ids: np.ndarray, version: Any) -> None:
        """Wait for the id checks of ``ids`` at ``version`` that :meth:`resolve_materialization` left running.

        A backend that checks ids beside its query (CAVE at a pinned version) raises here what the
        check found (e.g. :class:`~connectomix.errors.MaterializationError`); the core calls this when
        it answers without asking the backend (an empty side), so such an answer is never returned for
        ids the check refuses. The default does nothing: other backends check before they return.
        """

    def get_connectivity(self, query: ConnectivityQuery) -> pd.DataFrame:
        """Connection weights for ``query`` (see :class:`ConnectivityQuery`)."""
        raise NotImplementedError

    def get_synapses(self, query: SynapseQuery) -> pd.DataFrame:
        """Synaptic connections for ``query`` (see :class:`SynapseQuery`)."""
        raise UnsupportedOperation(f"the {self.name} backend has no synapse-level data")

    def get_skeletons(self, ids: np.ndarray) -> Any:
        """A navis ``NeuronList`` of ``TreeNeuron`` s in nm."""
        raise UnsupportedOperation(f"the {self.name} backend has no skeletons")

    def get_meshes(self, ids: np.ndarray) -> Any:
        """A navis ``NeuronList`` of ``MeshNeuron`` s in nm (capability ``MESHES``).

        Parameters
        ----------
        ids
            Unique ``int64`` neuron ids, already checked by the core.

        Returns
        -------
        navis.NeuronList
            One ``MeshNeuron`` per id, in the order of ``ids``: ``id`` the neuron id (``int``), vertices in
            nm (``units="1 nanometer"``), ``dataset`` (and, for versioned data, ``version``) as neuron
            attributes. :func:`connectomix.precomputed.read_meshes` reads a neuroglancer precomputed
            segmentation source this way.

        Raises
        ------
        IdsNotFoundError
            Naming (``.ids``) every id the backend holds no mesh for -- exactly as :meth:`get_skeletons`;
            the core then applies ``missing="raise" | "warn" | "skip"`` and tells ids the dataset does not
            have apart from neurons without a mesh.
        """
        raise UnsupportedOperation(f"the {self.name} backend has no meshes")

    def update_ids(self, ids: np.ndarray, materialization: Any = None) -> pd.DataFrame:
        """Map outdated ids forward (``old_id, new_id, changed``)."""
        raise UnsupportedOperation(f"ids of the {self.name} backend do not change over time")

    def resolve_materialization(self, ids: np.ndarray | None, materialization: Any) -> Any:
        """Turn ``'auto'``/``'latest'``/``'live'``/int into the concrete version queried."""
        if materialization is not None:
            raise UnsupportedOperation(
                f"the {self.name} backend has a single fixed version per dataset; "
                f"materialization={materialization!r} is not supported (pass None)"
            )
        return self.info().version
