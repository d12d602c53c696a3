"""Which neurons a query is about: :class:`NeuronCriteria` and id parsing.

Everywhere connectomix takes neurons it accepts a :class:`NeuronCriteria`, a
single id, a list/array/Series of ids, or navis neurons (whose ``.id`` is
used). Input is validated here, once, before any backend sees it.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

from . import hints
from .errors import InvalidArgumentError, InvalidIdError, InvalidRegexError

__all__ = ["NeuronCriteria", "parse_ids", "to_criteria", "STRING_FIELDS", "COUNT_FIELDS"]

StrOrList = str | Iterable[str] | None


def parse_ids(x: Any, *, what: str = "ids") -> np.ndarray:
    """Turn ids given in any common form into a sorted, unique ``int64`` array.

    Accepts an int, a string of digits, an iterable/array/Series of those, a
    navis neuron or ``NeuronList`` (their ``.id``), or a DataFrame with an
    ``id``/``bodyId``/``root_id`` column.

    Raises
    ------
    InvalidIdError
        For anything that is not a non-negative integer id (floats with a
        fraction, negative numbers, words, NaN, booleans).

    Examples
    --------
    >>> parse_ids([3, "2", 3])
    array([2, 3])
    >>> parse_ids("abc")
    Traceback (most recent call last):
    ...
    connectomix.errors.InvalidIdError: ids must be non-negative integers (ASCII digits, at most 9223372036854775807); got 'abc'
    """
    if isinstance(x, pd.DataFrame):
        for col in ("id", "bodyId", "root_id"):
            if col in x.columns:
                return parse_ids(x[col], what=what)
        raise InvalidIdError(
            f"{what}: a DataFrame needs an 'id', 'bodyId' or 'root_id' column; it has {list(x.columns)}"
        )
    if hasattr(x, "id") and not isinstance(x, (str, bytes, numbers.Number, np.ndarray, pd.Series)):
        # navis Neuron (id scalar) or NeuronList (id array)
        return parse_ids(x.id, what=what)
    if isinstance(x, (str, bytes, numbers.Number, np.generic)) or (isinstance(x, np.ndarray) and x.ndim == 0):
        items = [x.item() if isinstance(x, np.ndarray) else x]
    elif isinstance(x, Mapping):
        raise InvalidIdError(f"{what} must be integers or a list of integers; got a mapping {x!r}")
    elif isinstance(x, Iterable):
        items = list(x.tolist() if hasattr(x, "tolist") else x)
    else:
        raise InvalidIdError(f"{what} must be integers or a list of integers; got {type(x).__name__} {x!r}")
    if all(type(v) is int for v in items):  # plain ints (what integer arrays' tolist() gives): vectorised
        try:
            out = np.array(items, dtype="int64")
        except OverflowError:  # beyond int64: the loop below names the value
            out = None
        if out is not None and not (out < 0).any():
            return np.unique(out)
    out = np.empty(len(items), dtype="int64")
    for i, v in enumerate(items):
        out[i] = _one_id(v, what)
    return np.unique(out)


_ASCII_DIGITS = re.compile(r"[0-9]+")
_INT64_MAX = int(np.iinfo("int64").max)


def _one_id(v: Any, what: str) -> int:
    bad = InvalidIdError(f"{what} must be non-negative integers (ASCII digits, at most {_INT64_MAX}); got {v!r}")
    if isinstance(v, (bool, np.bool_)):
        raise bad
    if isinstance(v, bytes):
        v = v.decode("ascii", errors="replace")
    if isinstance(v, str):
        s = v.strip()
        if not _ASCII_DIGITS.fullmatch(s):  # not str.isdigit(): int() would read '١٢٣' or '１２３' too
            raise bad
        v = int(s)
    elif isinstance(v, (numbers.Integral,)):
        v = int(v)
    elif isinstance(v, numbers.Real):
        try:
            f = float(v)
        except (OverflowError, ValueError):
            raise bad from None
        if not math.isfinite(f) or f != int(f):
            raise bad
        v = int(f)
    else:
        raise bad
    if v < 0 or v > np.iinfo("int64").max:
        raise bad
    return v


#: Constructs that not every backend's engine reads the same way: look-around and back-references
#: (RE2 has none), ``{,n}`` (Python: 0 to n repeats; RE2: the literal text) and POSIX classes
#: ``[[:alpha:]]`` (RE2: a class; Python: a set of the characters ``[:alph``).
_NOT_PORTABLE = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=|(?<!\\)\{,|(?<!\\)\[:")


def _check_pattern(name: str, pattern: str, guessed: str | None = None) -> None:
    """Reject patterns that do not compile or that not every backend's engine supports.

    ``guessed``: the character that made ``regex=None`` read the value as a pattern (said in the error).
    """
    try:
        with warnings.catch_warnings():  # Python's "possible nested set" etc.: said below, as an error
            warnings.simplefilter("ignore", FutureWarning)
            re.compile(pattern)
    except re.error as exc:
        why = (f" (read as one because it contains {guessed!r}: regex=None guesses like neuprint-python)"
               if guessed else "")
        raise InvalidRegexError(
            f"{name}={pattern!r} is not a valid regular expression{why} ({exc}); "
            "pass regex=False to match the text exactly"
        ) from None
    if _NOT_PORTABLE.search(pattern):
        raise InvalidRegexError(
            f"{name}={pattern!r} uses look-around, a back-reference, '{{,n}}' or a POSIX class '[:...:]', which "
            "not every backend reads the same way; patterns are limited to the portable RE2 subset "
            "(write '{0,n}', or list the characters)"
        )


def _as_tuple(v: StrOrList, name: str) -> tuple[str, ...] | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = [v]
    try:
        items = tuple(v)
    except TypeError:
        raise InvalidArgumentError(f"{name} must be a string or a list of strings; got {v!r}") from None
    for s in items:
        if not isinstance(s, str) or not s:
            raise InvalidArgumentError(f"{name} must contain non-empty strings; got {s!r}")
    if not items and name in _ROI_FIELDS:
        raise InvalidArgumentError(
            f"{name}=[] is ambiguous (all of no ROIs, or any of none?); give ROI names, or None for no ROI condition"
        )
    return items


#: Criteria fields holding ROI names: an empty list is refused (see :class:`NeuronCriteria`).
_ROI_FIELDS = ("rois", "input_rois", "output_rois")
#: String criteria fields and the ``neurons`` column each one filters (exact, or regex with ``regex=True``).
STRING_FIELDS = {"type": "type", "instance": "instance", "status": "status", "side": "side", "class_": "class",
                 "superclass": "superclass", "nt": "nt", "flywire_type": "flywire_type",
                 "hemibrain_type": "hemibrain_type", "manc_type": "manc_type", "malecns_type": "malecns_type"}
#: Count criteria fields and the ``neurons`` column each one thresholds (``>=``).
COUNT_FIELDS = {"min_pre": "pre", "min_post": "post", "min_upstream": "upstream", "min_downstream": "downstream"}
#: String fields whose values decide the ``regex=None`` guess: neuprint-python 0.6.4's ``list_props_regex``
#: (``type, instance, flywireType, hemibrainType, mancType``; ``neuprint/queries/neuroncriteria.py``).
GUESSED_FIELDS = ("type", "instance", "flywire_type", "hemibrain_type", "manc_type")
#: The fields a guess reads as patterns: neuprint-python matches its cross-type fields exactly even then
#: (they are also in its exact ``list_props``, which ``basic_exprs`` and ``global_vars`` use).
PATTERN_FIELDS_OF_A_GUESS = ("type", "instance")
#: Criteria fields that list alternatives: an empty list matches nothing.
_ALTERNATIVE_FIELDS = ("ids",) + tuple(STRING_FIELDS)
#: The values ``side`` may take (``neurons.side`` is normalised to these on every backend).
_SIDES = ("left", "right", "center")


@dataclass(frozen=True, init=False)
class NeuronCriteria:
    """Select neurons by id, annotations (type, side, class, ...), ROIs and synapse counts.

    All given conditions must hold (logical AND); a list within one field is
    an OR. ``None`` (the default) puts no condition on a field; an empty list
    of alternatives (``ids=[]`` or any string field: ``type=[]``,
    ``side=[]``, ...) matches nothing, on every backend and in every method;
    an empty ROI list (``rois=[]``, ``input_rois=[]``, ``output_rois=[]``) is
    ambiguous and raises :class:`~connectomix.errors.InvalidArgumentError`.
    String fields match exactly with ``regex=False`` and as patterns with
    ``regex=True``, in which case the whole value must match the pattern
    (like Cypher's ``=~``); a missing value (``<NA>``) never matches. The
    default ``regex=None`` guesses as neuprint-python 0.6.4 does: a value of
    ``type``, ``instance``, ``flywire_type``, ``hemibrain_type`` or
    ``manc_type`` containing one of ``\\ . ? [ ] + ^ $ *`` makes ``type``
    and ``instance`` patterns (every other string field, the cross-dataset
    types included, still matches exactly, as in neuprint-python), and the
    guess is visible in :attr:`regex`, :attr:`regex_guessed` and the repr. neuprint-python's spellings ``bodyId``, ``inputRois``,
    ``outputRois``, ``flywireType``, ``hemibrainType``, ``mancType`` and
    ``label='Neuron'`` are accepted; its other fields raise
    :class:`~connectomix.errors.InvalidArgumentError` saying what to write
    instead (see :mod:`connectomix.hints`). Each string field filters the
    :data:`~connectomix.schema.NEURONS` column of the same name (``class_``
    filters ``class``; ``NeuronCriteria(**{"class": ...})`` works too). A
    field whose column the dataset does not have raises
    :class:`~connectomix.errors.UnsupportedOperation` when queried.

    Parameters
    ----------
    ids
        Neuron ids. When given, any segment matches (neuPrint ``:Segment``);
        otherwise only neurons (``:Neuron``).
    type, instance
        Cell type / instance name, or a list of them.
    regex
        ``True``: every string field is a regular expression (full match);
        ``False``: every string field matches exactly; ``None`` (default, or
        ``"guess"``): neuprint-python's guess, see above. After construction
        :attr:`regex` is ``True`` or ``False``.
    status
        Proofreading status, e.g. ``"Traced"``, or a list.
    side
        Soma side: ``"left"``, ``"right"`` or ``"center"`` (or a list, or a
        pattern with ``regex=True``).
    class_, superclass
        The dataset's class / superclass (column ``class`` / ``superclass``).
    nt
        Predicted neurotransmitter, lowercase full name (``"acetylcholine"``,
        ``"gaba"``, ``"glutamate"``, ...).
    flywire_type, hemibrain_type, manc_type, malecns_type
        The neuron's cell type in another dataset, where the dataset publishes it.
    rois
        ROIs the neuron must have synapses in (``roi_req`` decides all/any).
    input_rois, output_rois
        ROIs with at least ``min_roi_inputs`` postsynaptic / ``min_roi_outputs``
        presynaptic sites of the neuron.
    roi_req
        ``"all"`` (default) or ``"any"`` of ``rois``.
    min_pre, min_post
        Minimum presynaptic sites (T-bars) / postsynaptic sites (``>=``);
        refused on datasets that do not count sites (use ``min_downstream`` /
        ``min_upstream`` there).
    min_upstream, min_downstream
        Minimum incoming / outgoing synaptic connections (``>=``).
    label
        ``"neuron"`` or ``"segment"``; the default follows the ``ids`` rule.

    Examples
    --------
    >>> NeuronCriteria(type="DA1_lPN")
    NeuronCriteria(type=('DA1_lPN',))
    >>> NeuronCriteria(type="DA1_.*", regex=True, rois=["LH(R)"]).label
    'neuron'
    >>> NeuronCriteria(ids=[5, 3]).ids
    (3, 5)
    >>> NeuronCriteria(side="left", **{"class": "ALPN"})
    NeuronCriteria(side=('left',), class_=('ALPN',))
    >>> NeuronCriteria(type="DA1_lPN.*")  # '.' and '*': guessed to be a pattern, as neuprint-python does
    NeuronCriteria(type=('DA1_lPN.*',), regex=True)
    >>> NeuronCriteria(bodyId=[5813027016]).ids  # neuprint-python's spelling of ids
    (5813027016,)
    """

    ids: tuple[int, ...] | None
    type: tuple[str, ...] | None
    instance: tuple[str, ...] | None
    regex: bool
    status: tuple[str, ...] | None
    side: tuple[str, ...] | None
    class_: tuple[str, ...] | None
    superclass: tuple[str, ...] | None
    nt: tuple[str, ...] | None
    flywire_type: tuple[str, ...] | None
    hemibrain_type: tuple[str, ...] | None
    manc_type: tuple[str, ...] | None
    malecns_type: tuple[str, ...] | None
    rois: tuple[str, ...] | None
    input_rois: tuple[str, ...] | None
    output_rois: tuple[str, ...] | None
    roi_req: Literal["all", "any"]
    min_roi_inputs: int
    min_roi_outputs: int
    min_pre: int
    min_post: int
    min_upstream: int
    min_downstream: int
    label: Literal["neuron", "segment"]

    def __init__(
        self,
        ids: Any = None,
        *,
        type: StrOrList = None,
        instance: StrOrList = None,
        regex: bool | str | None = None,
        status: StrOrList = None,
        side: StrOrList = None,
        class_: StrOrList = None,
        superclass: StrOrList = None,
        nt: StrOrList = None,
        flywire_type: StrOrList = None,
        hemibrain_type: StrOrList = None,
        manc_type: StrOrList = None,
        malecns_type: StrOrList = None,
        rois: StrOrList = None,
        input_rois: StrOrList = None,
        output_rois: StrOrList = None,
        roi_req: Literal["all", "any"] = "all",
        min_roi_inputs: int = 1,
        min_roi_outputs: int = 1,
        min_pre: int = 0,
        min_post: int = 0,
        min_upstream: int = 0,
        min_downstream: int = 0,
        label: Literal["neuron", "segment"] | None = None,
        **other: Any,
    ):
        set_ = object.__setattr__
        given = {"ids": ids, "type": type, "instance": instance, "status": status, "side": side, "class_": class_,
                 "superclass": superclass, "nt": nt, "flywire_type": flywire_type, "hemibrain_type": hemibrain_type,
                 "manc_type": manc_type, "malecns_type": malecns_type, "rois": rois, "input_rois": input_rois,
                 "output_rois": output_rois, "label": label}
        spelled = {hints.CRITERIA_ALIASES.get(k): k for k in other}
        for name, value in hints.criteria_aliases(other, list(_FIELD_NAMES)).items():  # 'class', neuprint spellings
            if given[name] is not None:
                raise InvalidArgumentError(f"give {name} or {spelled[name]!r}, not both (they are the same field)")
            given[name] = value
        ids, class_, rois, input_rois, output_rois, label = (given[k] for k in (
            "ids", "class_", "rois", "input_rois", "output_rois", "label"))
        set_(self, "ids", None if ids is None else _ids_or_hint(ids))
        strings = {name: given[name] for name in STRING_FIELDS}
        for name, value in (*strings.items(), ("rois", rois), ("input_rois", input_rois),
                            ("output_rois", output_rois)):
            set_(self, name, _as_tuple(value, name))
        guess = regex is None or (isinstance(regex, str) and regex == "guess")
        if not guess and not isinstance(regex, (bool, np.bool_)):
            raise InvalidArgumentError(f"regex must be True or False (or None: guess as neuprint-python does); got {regex!r}")
        guessed = None
        if guess:  # neuprint-python's rule, on the same fields
            guessed = hints.guess_regex(v for name in GUESSED_FIELDS for v in getattr(self, name) or ())
            regex = guessed is not None
        regex = bool(regex)
        set_(self, "regex", regex)
        set_(self, "_regex_guessed", guessed)
        if not regex or guessed:
            for value in self.side or ():
                if value not in _SIDES:
                    raise InvalidArgumentError(
                        f"side={value!r} is not a side; valid: {list(_SIDES)} (every dataset's spelling, "
                        "e.g. 'L', 'RHS' or 'left soma', is mapped to these)")
        if guessed:  # fields neuprint-python never reads as patterns stay exact: their values are escaped
            for name in set(STRING_FIELDS) - set(PATTERN_FIELDS_OF_A_GUESS):
                if getattr(self, name) is not None:
                    set_(self, name, tuple(hints.literal_pattern(v) for v in getattr(self, name)))
        if regex:  # (values escaped above are literals by construction: not checked as patterns)
            for name in PATTERN_FIELDS_OF_A_GUESS if guessed else STRING_FIELDS:
                for pattern in getattr(self, name) or ():
                    _check_pattern(name, pattern, guessed)
        if not isinstance(roi_req, str) or roi_req not in ("all", "any"):
            raise InvalidArgumentError(f"roi_req must be 'all' or 'any'; got {roi_req!r}")
        set_(self, "roi_req", roi_req)
        for name, value in (("min_roi_inputs", min_roi_inputs), ("min_roi_outputs", min_roi_outputs),
                            ("min_pre", min_pre), ("min_post", min_post), ("min_upstream", min_upstream),
                            ("min_downstream", min_downstream)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or not (
                    0 <= value <= _INT64_MAX):
                raise InvalidArgumentError(f"{name} must be a non-negative integer; got {value!r} (valid: 0 to {_INT64_MAX})")
            set_(self, name, int(value))
        if label is None:
            label = "segment" if self.ids is not None else "neuron"
        if isinstance(label, str) and label in ("Neuron", "Segment"):  # neuprint-python's node labels
            label = label.lower()
        if not isinstance(label, str) or label not in ("neuron", "segment"):
            raise InvalidArgumentError(f"label must be 'neuron' or 'segment'; got {label!r}")
        set_(self, "label", label)

    def __repr__(self) -> str:
        defaults = NeuronCriteria()
        parts = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name != "label" and getattr(self, f.name) != getattr(defaults, f.name)
        ]
        return f"NeuronCriteria({', '.join(parts)})"

    @property
    def all_rois(self) -> tuple[str, ...]:
        """Every ROI name the criteria mention (to validate against a dataset)."""
        return tuple(dict.fromkeys((self.rois or ()) + (self.input_rois or ()) + (self.output_rois or ())))

    @property
    def matches_nothing(self) -> bool:
        """True when a list of alternatives (``ids`` or a string field such as ``type``) is empty.

        Such criteria select no neuron on every backend; the core answers them
        with empty tables without asking the backend.

        Examples
        --------
        >>> NeuronCriteria(type=[]).matches_nothing, NeuronCriteria().matches_nothing
        (True, False)
        """
        return any(getattr(self, name) == () for name in _ALTERNATIVE_FIELDS)

    @property
    def is_ids_only(self) -> bool:
        """True when the criteria are nothing but a list of ids."""
        return self.ids is not None and self == NeuronCriteria(self.ids)

    def with_ids(self, ids: Any) -> NeuronCriteria:
        """A copy restricted to ``ids`` (the label rule is kept as it was)."""
        new = NeuronCriteria.__new__(NeuronCriteria)
        for f in fields(self):
            object.__setattr__(new, f.name, getattr(self, f.name))
        object.__setattr__(new, "_regex_guessed", self.regex_guessed)
        object.__setattr__(new, "ids", tuple(int(i) for i in parse_ids(ids)))
        return new

    @property
    def regex_guessed(self) -> str | None:
        """The character that made ``regex=None`` guess a pattern (neuprint-python's rule), else ``None``.

        Examples
        --------
        >>> NeuronCriteria(type="DA1_.*").regex_guessed, NeuronCriteria(type="DA1_.*", regex=True).regex_guessed
        ('.', None)
        """
        return getattr(self, "_regex_guessed", None)


#: Every field name :class:`NeuronCriteria` accepts as a keyword (``class`` is ``class_``).
_FIELD_NAMES = ("type", "instance", "regex", "status", *list(STRING_FIELDS)[3:], "class", "rois", "input_rois",
                "output_rois", "roi_req", "min_roi_inputs", "min_roi_outputs", *COUNT_FIELDS, "label")


def to_criteria(x: Any) -> NeuronCriteria:
    """Accept a :class:`NeuronCriteria` or anything :func:`parse_ids` accepts.

    Examples
    --------
    >>> to_criteria(1734350788)
    NeuronCriteria(ids=(1734350788,))
    >>> to_criteria("DA1_lPN")
    Traceback (most recent call last):
    ...
    connectomix.errors.InvalidIdError: ids must be non-negative integers (ASCII digits, at most 9223372036854775807); got 'DA1_lPN'. A name is not an id: where neuprint-python reads a string as a type or instance, write NeuronCriteria(type='DA1_lPN') (or instance='DA1_lPN')
    """
    if isinstance(x, NeuronCriteria):
        return x
    if x is None:
        raise InvalidArgumentError("expected neuron ids or a NeuronCriteria; got None")
    return NeuronCriteria(ids=x)


def _ids_or_hint(x: Any) -> tuple[int, ...]:
    """:func:`parse_ids` as a tuple; a name where ids go gets neuprint-python's meaning of it as a hint."""
    try:
        return tuple(int(i) for i in parse_ids(x))
    except InvalidIdError as exc:
        names = [x] if isinstance(x, str) else list(x) if isinstance(x, (list, tuple)) else []
        name = next((n for n in names if isinstance(n, str) and not _ASCII_DIGITS.fullmatch(n.strip())), None)
        if name is None:
            raise
        if re.fullmatch(r"[a-z]{1,2}", name):  # NeuronCriteria("n", ...): neuprint-python's Cypher variable
            raise InvalidIdError(f"{exc}. neuprint-python's first argument (matchvar, the Cypher variable) has "
                                 "no counterpart: connectomix's first argument is the ids; leave it out") from None
        raise InvalidIdError(f"{exc}. A name is not an id: where neuprint-python reads a string as a type or "
                             f"instance, write NeuronCriteria(type={name!r}) (or instance={name!r})") from None
