"""Habits from neuprint-python and fafbseg, and hints when a query matches nothing.

Users come to connectomix with neuprint-python's and fafbseg's spellings in
their fingers. This module decides, in one place, what happens to them:

* **Same meaning, other spelling**: accepted as an alias
  (:data:`CRITERIA_ALIASES`: ``NC(bodyId=...)`` is ``NC(ids=...)``).
* **Other meaning, or not supported**: an
  :class:`~connectomix.errors.InvalidArgumentError` that names the habit and
  says what to write instead (:data:`CRITERIA_HINTS`, :data:`ARGUMENT_HINTS`),
  never a raw ``TypeError``.
* **regex guessing**: ``NeuronCriteria(regex=None)`` reads ``type``/``instance``
  values as patterns exactly when neuprint-python 0.6.4 does
  (:data:`REGEX_CHARACTERS`).
* **A query that matches nothing**: :func:`warn_unmatched` warns with an
  :class:`~connectomix.errors.EmptyResultWarning` naming the values no neuron
  of the dataset has, the closest values it does have ("did you mean"), and
  whether regex reading was the cause. ROI names are checked before any
  query (:func:`unknown_roi_message`): the error lists every valid ROI.
"""

from __future__ import annotations

import difflib
import logging
import re
import textwrap
import threading
import warnings
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConnectomixError, EmptyResultWarning, InvalidArgumentError

__all__ = ["REGEX_CHARACTERS", "CRITERIA_ALIASES", "CRITERIA_HINTS", "ARGUMENT_HINTS", "guess_regex",
           "looks_like_regex", "literal_pattern", "criteria_aliases", "refuse_foreign_arguments", "raise_for_call", "close_matches",
           "format_choices", "unknown_roi_message", "known_values", "warn_unmatched", "announce"]

#: The characters that make neuprint-python guess a regular expression when ``regex`` is not given
#: (``NeuronCriteria(regex='guess')``, its default): ``\ . ? [ ] + ^ $ *``. Copied as a rule, not as
#: code, from neuprint-python 0.6.4, ``neuprint/queries/neuroncriteria.py``,
#: ``NeuronCriteria._init_regex``: ``re.compile(r'[\\\.\?\[\]\+\^\$\*]')``, searched in every value of
#: the regex-optional fields ``type, instance, flywireType, hemibrainType, mancType``; one hit makes
#: them all patterns. ``(``, ``)``, ``|``, ``{`` and ``}`` are not in the set (hemibrain instances such
#: as ``MBON14(a3)_R`` contain parentheses).
REGEX_CHARACTERS = re.compile(r"[\\.?\[\]+^$*]")
#: Characters that make an exactly matched value look like a pattern (said when it matched nothing).
_LOOKS_LIKE_REGEX = re.compile(r"[\\.?\[\]+^$*|]")
_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")


def guess_regex(values: Iterable[str]) -> str | None:
    """The first character of ``values`` that makes neuprint-python guess a pattern, or ``None``.

    Examples
    --------
    >>> guess_regex(["DA1_lPN.*"]), guess_regex(["MBON14(a3)_R"])
    ('.', None)
    """
    for value in values:
        hit = REGEX_CHARACTERS.search(value)
        if hit:
            return hit.group()
    return None


def looks_like_regex(value: str) -> bool:
    """True if ``value`` has a character of a pattern (neuprint-python's set, or ``|``).

    Examples
    --------
    >>> looks_like_regex("(KC|PN)"), looks_like_regex("MBON14(a3)_R")
    (True, False)
    """
    return bool(_LOOKS_LIKE_REGEX.search(value))


def literal_pattern(value: str) -> str:
    """A pattern that matches exactly ``value`` on every backend's engine (RE2, Java, Python).

    Only the pattern syntax characters get a backslash (``re.escape`` also escapes spaces,
    which RE2 refuses).

    Examples
    --------
    >>> literal_pattern("ascending neuron (AN)")
    'ascending neuron \\\\(AN\\\\)'
    """
    return _SPECIAL.sub(r"\\\1", value)


# -- spellings of the other clients ----------------------------------------------------------------

#: neuprint-python ``NeuronCriteria`` spellings that mean the same in connectomix.
CRITERIA_ALIASES = {
    "class": "class_",
    "bodyId": "ids",
    "inputRois": "input_rois",
    "outputRois": "output_rois",
    "flywireType": "flywire_type",
    "hemibrainType": "hemibrain_type",
    "mancType": "manc_type",
}

_FILTER_TABLE = ("connectomix criteria filter the core columns only; fetch the neurons and filter the "
                 "table (native columns keep their names), e.g. neurons[neurons[{name!r}].isin([...])]")

#: neuprint-python / fafbseg ``NeuronCriteria`` fields that mean something else here, or nothing.
CRITERIA_HINTS = {
    "somaSide": "side= ('left', 'right' or 'center'; every dataset's somaSide spelling is mapped to these)",
    "rootSide": "side= ('left', 'right' or 'center')",
    "predictedNt": "nt= (a lowercase full name such as 'acetylcholine'; mapped from predictedNt)",
    "consensusNt": "nt= (the predicted transmitter column); " + _FILTER_TABLE.format(name="consensusNt"),
    "somaLocation": ("nothing here: connectomix neuron tables have no soma location; "
                     "query the dataset's own client for soma positions"),
    "tosomaLocation": "nothing here: connectomix neuron tables have no soma location",
    "rootLocation": "nothing here: connectomix neuron tables have no root location",
    "soma": "nothing here: connectomix neuron tables have no soma location",
    "cropped": _FILTER_TABLE.format(name="cropped"),
    "statusLabel": _FILTER_TABLE.format(name="statusLabel"),
    "cellBodyFiber": _FILTER_TABLE.format(name="cellBodyFiber"),
    "group": _FILTER_TABLE.format(name="group"),
    "serial": _FILTER_TABLE.format(name="serial"),
    "subclass": _FILTER_TABLE.format(name="subclass"),
    "hemilineage": _FILTER_TABLE.format(name="hemilineage"),
    "max_closestLandmarkDistanceMicrons": "nothing here (no landmark distances in connectomix tables)",
    "matchvar": "nothing here: connectomix writes the queries itself",
    "client": ("nothing here: criteria are not bound to a server; pass them to a Dataset's method "
               "(ds = connectomix.open(...); ds.fetch_neurons(criteria))"),
    "case": ("nothing here: matching is case-sensitive (a case-insensitive pattern is not portable across "
             "backends); list the spellings, e.g. type=['KC', 'kc']"),
}

#: Method arguments of neuprint-python / fafbseg that are spelled or placed differently here,
#: ``{(method or None for any, argument): what to write}``.
ARGUMENT_HINTS = {
    (None, "client"): "connectomix methods need no client: the Dataset is the connection "
                      "(ds = connectomix.open('hemibrain'); ds.get_synapses(...))",
    (None, "dataset"): "choose the dataset when opening it: connectomix.open('flywire') (names from "
                       "connectomix.datasets(), or a URI), then call the method on it",
    (None, "filtered"): "fafbseg's filtered= is a dataset option here: connectomix.open('flywire', filtered=False)",
    (None, "bodyId"): "neuprint-python's bodyId is ids here: pass the ids (or a NeuronCriteria) as the first argument",
    ("get_synapses", "transmitters"): "per-synapse transmitter predictions are not in connectomix synapse "
                                      "tables; the neuron table's nt column has each neuron's predicted transmitter",
    ("get_synapses", "neuropils"): "synapse tables always have the neuropil: the roi column (the ROI of the "
                                   "postsynaptic site, 'NotPrimary' outside the primary ROIs)",
    ("get_synapses", "synapse_criteria"): "give min_score= and rois= directly (neuprint-python's SynapseCriteria "
                                          "fields confidence= and rois=)",
    ("get_connectivity", "upstream"): "give the neurons as targets= to get their upstream partners",
    ("get_connectivity", "downstream"): "give the neurons as sources= to get their downstream partners",
    ("get_connectivity", "min_total_weight"): "min_weight= (a pair's total weight within rois, >=)",
    ("get_connectivity", "min_roi_weight"): "min_weight= with rois= and by_roi=True (weights are per ROI then)",
    ("get_connectivity", "min_score"): "synapse scores are applied by get_synapses(min_score=); connectivity "
                                       "tables count the dataset's published connections",
    ("get_connectivity", "proofread_only"): "restrict a side with criteria, e.g. sources=NeuronCriteria(status=...)",
    ("get_connectivity", "style"): "one row per pair is the default; by_roi=True gives one row per (pair, ROI), "
                                   "by='type' sums over cell types",
    ("get_connectivity", "upstream_criteria"): "sources= (neuprint-python's fetch_simple_connections argument)",
    ("get_connectivity", "downstream_criteria"): "targets= (neuprint-python's fetch_simple_connections argument)",
    ("get_connectivity", "source_criteria"): "sources=",
    ("get_connectivity", "target_criteria"): "targets=",
}


def criteria_aliases(other: Mapping[str, Any], valid: list[str]) -> dict[str, Any]:
    """Map extra ``NeuronCriteria`` keywords to field names, or raise with a precise hint.

    Examples
    --------
    >>> criteria_aliases({"bodyId": [1], "class": "ALPN"}, [])
    {'ids': [1], 'class_': 'ALPN'}
    """
    out, unknown = {}, []
    for name, value in other.items():
        if name in CRITERIA_ALIASES:
            out[CRITERIA_ALIASES[name]] = value
        elif name in CRITERIA_HINTS:
            raise InvalidArgumentError(
                f"NeuronCriteria({name}=...) is neuprint-python's spelling; in connectomix use {CRITERIA_HINTS[name]}")
        else:
            unknown.append(name)
    if unknown:
        unknown.sort()
        raise InvalidArgumentError(f"unknown criteria field(s) {unknown}; {_did_you_mean(unknown[0], valid)}"
                                   f"valid: {valid}")
    return out


def refuse_foreign_arguments(method: str, kwargs: Mapping[str, Any]) -> None:
    """Raise a hint for other clients' arguments among a method's ``**kwargs`` (``fetch_neurons(client=...)``).

    Criteria spellings (``bodyId`` ...) are left to :class:`~connectomix.NeuronCriteria`.
    """
    for key in kwargs:
        hint = ARGUMENT_HINTS.get((method, key)) or ARGUMENT_HINTS.get((None, key))
        if hint and key not in CRITERIA_ALIASES:
            raise InvalidArgumentError(f"{method}({key}=...) is another client's argument; {hint}")


def raise_for_call(func: Any, args: tuple, kwargs: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidArgumentError` if ``func(*args, **kwargs)`` cannot bind its arguments.

    Called when a connectomix method raised ``TypeError``: a wrong keyword (often another client's
    spelling) or too many positional arguments becomes a precise hint. Returns if the arguments
    bind (the ``TypeError`` came from elsewhere).
    """
    import inspect

    signature = inspect.signature(func)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        name = func.__name__
        params = [p for p in signature.parameters if p != "self"]
        for key in kwargs:
            if key in signature.parameters:
                continue
            hint = ARGUMENT_HINTS.get((name, key)) or ARGUMENT_HINTS.get((None, key))
            if hint:
                raise InvalidArgumentError(f"{name}({key}=...) is another client's argument; {hint}") from None
            raise InvalidArgumentError(f"{name}() has no argument {key!r}; {_did_you_mean(key, params)}"
                                       f"its arguments are: {', '.join(params)}") from None
        raise InvalidArgumentError(f"{name}(): {exc}; its arguments are: {', '.join(params)} (after the "
                                   "first ones, give them by name)") from None


# -- did you mean ----------------------------------------------------------------------------------


def close_matches(value: str, valid: Iterable[str], *, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The ``n`` values of ``valid`` closest to ``value``, ignoring case (difflib ratio ``>= cutoff``).

    Examples
    --------
    >>> close_matches("da1_lpn", ["DA1_lPN", "DA2_lPN", "KC"])
    ['DA1_lPN']
    >>> close_matches("DA1_lPM", ["DA1_lPN", "DA2_lPN", "KC"])
    ['DA1_lPN', 'DA2_lPN']
    """
    by_lower: dict[str, list[str]] = {}
    for v in sorted(set(map(str, valid))):
        by_lower.setdefault(v.lower(), []).append(v)
    if str(value).lower() in by_lower:  # differs in case only: that is the one
        return by_lower[str(value).lower()][:n]
    hits = difflib.get_close_matches(str(value).lower(), list(by_lower), n=n, cutoff=cutoff)
    return [v for h in hits for v in by_lower[h]][:n]


def _did_you_mean(value: str, valid: Iterable[str]) -> str:
    close = close_matches(value, valid)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


def format_choices(values: Iterable[str], *, width: int = 88, indent: str = "  ") -> str:
    """Every value, sorted, quoted and wrapped into lines of at most ``width`` characters.

    Examples
    --------
    >>> print(format_choices(["LH(R)", "AL(R)", "CA(R)"], width=20))
      'AL(R)', 'CA(R)',
      'LH(R)'
    """
    text = ", ".join(repr(v) for v in sorted(set(map(str, values))))
    return textwrap.fill(text, width=width, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def unknown_roi_message(roi: str, valid: Iterable[str], dataset: str | None = None) -> str:
    """The message of :class:`~connectomix.errors.UnknownROIError`: did-you-mean, then every valid ROI.

    Examples
    --------
    >>> print(unknown_roi_message("lh(r)", ["AL(R)", "LH(R)"], "sample"))
    Unknown ROI 'lh(r)' in dataset 'sample'; did you mean 'LH(R)'? The 2 valid ROIs are:
      'AL(R)', 'LH(R)'
    """
    valid = sorted(set(map(str, valid)))
    where = f" in dataset {dataset!r}" if dataset else ""
    if not valid:
        return f"Unknown ROI {roi!r}{where}; the dataset has no ROIs"
    return (f"Unknown ROI {roi!r}{where}; {_did_you_mean(roi, valid)}The {len(valid)} valid ROIs are:\n"
            f"{format_choices(valid)}")


# -- what a dataset has: cheap listings, cached per dataset and version ------------------------------

_listings: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_listings_lock = threading.Lock()


def known_values(dataset: Any, column: str, version: Any = None) -> list[str] | None:
    """The distinct values of a neuron column (``type``, ``instance``) the dataset has, or ``None``.

    Cheap and asked only when a query matched nothing: a release folder answers with one DuckDB
    ``SELECT DISTINCT``, neuPrint with one Cypher ``RETURN DISTINCT`` (no user text in it), CAVE
    from the rows of its annotation table; a third-party backend may offer
    ``neuron_values(column, version)``. Kept per backend object, column and version.
    """
    backend = dataset.backend
    key = (column, repr(version))
    with _listings_lock:
        cached = _listings.get(backend, {}).get(key)
    if cached is not None:
        return cached
    values = _list_values(backend, column, version)
    if values is not None:
        values = sorted({str(v) for v in values if isinstance(v, str) and v})
        with _listings_lock:
            _listings.setdefault(backend, {})[key] = values
    return values


def _list_values(backend: Any, column: str, version: Any) -> list | None:
    own = getattr(backend, "neuron_values", None)
    if callable(own):
        return own(column, version)
    if backend.name == "release":
        if column not in backend._neuron_columns:
            return None
        quoted = '"' + column.replace('"', '""') + '"'  # a core column name, never user text
        sql = f"SELECT DISTINCT {quoted} AS v FROM {backend._table('neurons')}"
        return backend._query(sql)["v"].dropna().tolist()
    if backend.name == "neuprint":
        mapping, _, _ = backend.neuron_columns()
        prop = {"type": "type", "instance": "instance"}.get(column) or mapping.get(column)
        if prop is None or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prop):
            return None
        return backend.run(f"MATCH (n:Neuron) WHERE n.{prop} IS NOT NULL RETURN DISTINCT n.{prop} AS v")["v"].tolist()
    if backend.name == "cave":
        from .criteria import NeuronCriteria

        if backend.settings.neuron_table is None or column not in dict(backend._annotation_map()):
            return None
        table = backend._annotations(NeuronCriteria(), version, None)
        return table[column].dropna().tolist() if column in table.columns else None
    return None


#: The string fields whose values get a did-you-mean when they match nothing.
_HINTED_FIELDS = {"type": "type", "instance": "instance"}


def warn_unmatched(dataset: Any, crit: Any, neurons: Any, version: Any = None, *, stacklevel: int = 4) -> None:
    """Warn about ``type``/``instance`` values of ``crit`` that no neuron of the dataset has.

    Only values missing from ``neurons`` (the query's answer) are looked up, so a query whose every
    value matched costs nothing. A value the dataset does have (excluded by the other criteria)
    is not warned about. The warning (:class:`~connectomix.errors.EmptyResultWarning`) carries the
    suggestions as attributes for programs (the CLI) to print.
    """
    if crit.matches_nothing:
        return
    for field, column in _HINTED_FIELDS.items():
        values = getattr(crit, field)
        if not values or column not in neurons.columns:
            continue
        found = neurons[column].dropna().astype(str)
        for value in values:
            if crit.regex:
                if found.str.fullmatch(value).any():
                    continue
            elif (found == value).any():
                continue
            _warn_value(dataset, crit, field, column, value, version, empty=neurons.empty, stacklevel=stacklevel + 1)


def _warn_value(dataset, crit, field, column, value, version, *, empty, stacklevel):
    try:
        known = known_values(dataset, column, version)
    except ConnectomixError as exc:  # the hint is extra; the answer itself is complete
        known, trouble = None, f" (the dataset's {column} values could not be listed: {type(exc).__name__})"
    else:
        trouble = ""
    if known is None:
        if not empty:
            return
        close, reason = [], f"{field}={value!r} matched no neuron{trouble or ' (no listing of the values to compare)'}"
    elif crit.regex:
        pattern = re.compile(value)
        if any(pattern.fullmatch(k) for k in known):
            return  # the dataset has such values; the other criteria excluded them
        if value in known:
            how = (f"guessed to be one because it contains {crit.regex_guessed!r}, as neuprint-python does"
                   if crit.regex_guessed else "regex=True")
            reason = (f"{field}={value!r} was read as a regular expression ({how}), which does not match the "
                      f"{column} of that name; pass regex=False to match it exactly")
            close = [value]
        else:
            close = close_matches(value, known)
            reason = f"no {column} of dataset {dataset.name!r} matches the pattern {field}={value!r}"
    else:
        if value in known:
            return
        close = close_matches(value, known)
        reason = f"dataset {dataset.name!r} has no {column} {value!r}"
        if looks_like_regex(value):
            reason += " (it looks like a regular expression: pass regex=True, or leave regex unset to guess)"
    message = reason + (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close and close != [value]
                        else "") + ("" if empty else "; the other values matched")
    warnings.warn(EmptyResultWarning(message, field=field, value=value, suggestions=close), stacklevel=stacklevel)


# -- messages that are news once ---------------------------------------------------------------------

#: The logger of connectomix's informational messages (quiet unless the application enables INFO).
log = logging.getLogger("connectomix")
_announced: set = set()
_announced_lock = threading.Lock()


def announce(dataset: str, message: str) -> None:
    """Log ``message`` (e.g. "Using materialization version 783.") once per process and ``dataset``.

    fafbseg prints this line on every query; connectomix logs it at ``INFO`` on the ``"connectomix"``
    logger, so it is silent unless asked for (``logging.basicConfig(level=logging.INFO)``), said once
    per dataset and message however many queries and ``Dataset`` objects use that version, and every
    table records the version in ``df.attrs["version"]`` anyway.
    """
    key = (dataset, message)
    with _announced_lock:
        if key in _announced:
            return
        _announced.add(key)
    log.info("%s: %s", dataset, message)
