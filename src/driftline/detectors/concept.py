"""Sequential concept-drift detectors on a model's error stream, behind one interface.

Once labels join their predictions, stage 2 feeds each model's errors (0/1 for classifiers,
absolute residuals for regression) to one of river's drift detectors. They differ in what they
watch (DDM and its family: the error rate of a 0/1 stream; ADWIN and Page-Hinkley: the mean of
any bounded stream; KSWIN: the distribution within a sliding window) but are used alike here:
:func:`make_detector` builds one by name, :meth:`ConceptDriftDetector.update` takes a whole batch
of values, and :meth:`~ConceptDriftDetector.snapshot` turns its full state into plain JSON data
that stage 2 keeps in a table and :meth:`~ConceptDriftDetector.restore` turns back into a
detector that behaves exactly as the original would have.

Snapshots hold the detector's true state, never a replay of its input: every attribute of the
river detector as numbers, lists and nested objects, the random generator's state (KSWIN), and
for the two parts river implements in Rust (ADWIN's bucket structure, HDDM_W's exponentially
weighted means) the bytes those objects themselves produce for pickling, base64-encoded. Those
bytes are river's own binary layout (bincode, no code execution when loaded), so a snapshot that
holds them restores only under the river version that took it; restoring it under another
raises :class:`~driftline.errors.StatisticsError` rather than risk a crash inside river. The
size of a snapshot is bounded: KSWIN keeps at most ``window_size`` values, ADWIN's buckets grow
with the logarithm of its window, the others hold a few numbers.
"""

from __future__ import annotations

import base64
import collections
import copy
import inspect
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Self

import numpy as np
import river
from numpy.typing import ArrayLike
from river import drift, stats
from river.drift.binary.hddm_w import SampleInfo

from driftline.errors import StatisticsError

__all__ = ["DETECTORS", "ConceptDriftDetector", "detector_from_snapshot", "make_detector"]


@dataclass(frozen=True, slots=True)
class _Spec:
    factory: type[Any]
    binary: bool  # expects a 0/1 stream
    warns: bool  # has a warning zone
    defaults: Mapping[str, Any]  # driftline's defaults where they differ from river's


_SPECS: dict[str, _Spec] = {
    "adwin": _Spec(drift.ADWIN, binary=False, warns=False, defaults={}),
    "ddm": _Spec(drift.binary.DDM, binary=True, warns=True, defaults={}),
    "eddm": _Spec(drift.binary.EDDM, binary=True, warns=True, defaults={}),
    "hddm_a": _Spec(drift.binary.HDDMA, binary=True, warns=True, defaults={}),
    "hddm_w": _Spec(drift.binary.HDDMW, binary=True, warns=True, defaults={}),
    "page_hinkley": _Spec(drift.PageHinkley, binary=False, warns=False, defaults={}),
    # river's KSWIN draws from an unseeded generator by default; a fixed seed makes a replay
    # reproduce the live run.
    "kswin": _Spec(drift.KSWIN, binary=False, warns=False, defaults={"seed": 0}),
}

# KSWIN's ``window`` pre-fills the sliding window: data, not a parameter, so not offered.
_NOT_PARAMETERS = frozenset({"self", "window"})

DETECTORS: tuple[str, ...] = tuple(_SPECS)
"""Every detector :func:`make_detector` knows, by name."""


def _parameters(name: str) -> dict[str, Any]:
    spec = _SPECS[name]
    signature = inspect.signature(spec.factory.__init__)
    params = {
        key: p.default
        for key, p in signature.parameters.items()
        if key not in _NOT_PARAMETERS and p.default is not inspect.Parameter.empty
    }
    params.update(spec.defaults)
    return params


class ConceptDriftDetector:
    """A river drift detector fed batches, with a plain-data snapshot of its state.

    Build one with :func:`make_detector`. ``drift_detected`` says whether any value of the last
    batch triggered a drift (``drift_positions`` says which), ``warning_detected`` whether any
    put the detector in its warning zone (always False for detectors without one, see
    ``supports_warning``). After a drift the detector starts over on the next value, as river's
    do; ``n_drifts`` and ``n_seen`` count across those restarts, until :meth:`reset`.

    Parameters
    ----------
    name
        One of :data:`DETECTORS`.
    **params
        The river detector's parameters (JSON scalars); unknown names are rejected.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.6])
    >>> detector = make_detector("ddm").update(errors)
    >>> detector.n_seen, detector.n_drifts >= 1
    (2000, True)
    >>> restored = detector_from_snapshot(detector.snapshot())
    >>> restored.n_drifts == detector.n_drifts
    True
    """

    def __init__(self, name: str, **params: Any) -> None:
        if name not in _SPECS:
            raise StatisticsError(f"unknown detector {name!r}; allowed: {list(DETECTORS)}")
        allowed = _parameters(name)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise StatisticsError(
                f"unknown parameter(s) {unknown} for detector {name!r}; allowed: {sorted(allowed)}"
            )
        for key, value in params.items():
            if value is not None and not isinstance(value, bool | int | float | str):
                raise StatisticsError(
                    f"parameter {key!r} of detector {name!r} must be a number, string, boolean "
                    f"or None, got {type(value).__name__}"
                )
        self._name = name
        self._spec = _SPECS[name]
        self._params: dict[str, Any] = {**allowed, **params}
        self.reset()  # builds the river detector, which validates the values

    def _build(self) -> Any:
        try:
            return self._spec.factory(**self._params)
        except (TypeError, ValueError) as exc:
            raise StatisticsError(
                f"invalid parameters for detector {self._name!r}: {exc}"
            ) from None

    def reset(self) -> None:
        """Forget everything seen: a detector as new, with the same parameters."""
        self._detector = self._build()
        self._n_seen = 0
        self._n_drifts = 0
        self._drift_positions: tuple[int, ...] = ()
        self._warning = False

    # --- reading -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The detector's name, one of :data:`DETECTORS`."""
        return self._name

    @property
    def params(self) -> Mapping[str, Any]:
        """Every parameter of the river detector, defaults included."""
        return MappingProxyType(self._params)

    @property
    def supports_warning(self) -> bool:
        """Whether the detector has a warning zone (DDM, EDDM, HDDM_A, HDDM_W)."""
        return self._spec.warns

    @property
    def drift_detected(self) -> bool:
        """Whether any value of the last update triggered a drift."""
        return bool(self._drift_positions)

    @property
    def drift_positions(self) -> tuple[int, ...]:
        """Indices, within the last update's values, of the values that triggered a drift."""
        return self._drift_positions

    @property
    def warning_detected(self) -> bool:
        """Whether any value of the last update put the detector in its warning zone."""
        return self._warning

    @property
    def n_drifts(self) -> int:
        """Drifts detected since creation or the last :meth:`reset`."""
        return self._n_drifts

    @property
    def n_seen(self) -> int:
        """Values seen since creation or the last :meth:`reset`."""
        return self._n_seen

    # --- updating ------------------------------------------------------------------------

    def update(self, values: ArrayLike) -> Self:
        """Feed a batch of errors (0/1) or residuals, in order.

        The binary detectors (DDM, EDDM, HDDM_A, HDDM_W) accept only 0 and 1; all accept only
        finite numbers.
        """
        array = np.asarray(values, dtype=np.float64).ravel()
        if not np.isfinite(array).all():
            raise StatisticsError(f"detector {self._name!r} needs finite values")
        items: list[Any]
        if self._spec.binary:
            if not np.isin(array, (0.0, 1.0)).all():
                raise StatisticsError(f"detector {self._name!r} needs a stream of 0/1 errors")
            items = array.astype(np.int64).tolist()
        else:
            items = array.tolist()
        detector = self._detector
        warns = self._spec.warns
        positions: list[int] = []
        warned = False
        for i, x in enumerate(items):
            detector.update(x)
            if detector.drift_detected:
                positions.append(i)
            elif warns and detector.warning_detected:
                warned = True
        self._n_seen += len(items)
        self._n_drifts += len(positions)
        self._drift_positions = tuple(positions)
        self._warning = warned
        return self

    # --- state ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The detector's full state as plain JSON data (no NaN or infinity, no bytes).

        >>> snap = make_detector("page_hinkley").update([0.1, 0.2]).snapshot()
        >>> snap["detector"], snap["n_seen"]
        ('page_hinkley', 2)
        """
        state = {
            key: _encode(value)
            for key, value in vars(self._detector).items()
            if not callable(value)
        }
        return {
            "detector": self._name,
            "params": dict(self._params),
            "river_version": river.__version__,
            "n_seen": self._n_seen,
            "n_drifts": self._n_drifts,
            "drift_positions": list(self._drift_positions),
            "warning_detected": self._warning,
            "state": state,
        }

    def restore(self, snapshot: Mapping[str, Any]) -> Self:
        """Take over the state in ``snapshot``, taken from a detector of the same name and params.

        Raises
        ------
        StatisticsError
            If the snapshot is of another detector or other parameters, is malformed, or holds
            river's binary state from another river version.
        """
        if snapshot.get("detector") != self._name:
            raise StatisticsError(
                f"snapshot is of detector {snapshot.get('detector')!r}, not {self._name!r}"
            )
        if snapshot.get("params") != self._params:
            raise StatisticsError(
                f"snapshot parameters {snapshot.get('params')} differ from {self._params}"
            )
        state = snapshot["state"]
        if snapshot.get("river_version") != river.__version__ and _holds_rust_state(state):
            raise StatisticsError(
                f"snapshot holds river {snapshot.get('river_version')}'s binary state and "
                f"cannot be restored under river {river.__version__}"
            )
        detector = self._build()
        expected = {key for key, value in vars(detector).items() if not callable(value)}
        if set(state) != expected:
            raise StatisticsError(
                f"snapshot state has attributes {sorted(state)}, detector {self._name!r} "
                f"has {sorted(expected)}"
            )
        try:
            for key, value in state.items():
                setattr(detector, key, _decode(value, getattr(detector, key)))
            positions = tuple(int(i) for i in snapshot["drift_positions"])
            n_seen, n_drifts = int(snapshot["n_seen"]), int(snapshot["n_drifts"])
            warning = bool(snapshot["warning_detected"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StatisticsError(f"malformed snapshot of detector {self._name!r}: {exc}") from None
        self._detector = detector
        self._n_seen, self._n_drifts = n_seen, n_drifts
        self._drift_positions = positions
        self._warning = warning
        return self


def make_detector(name: str, **params: Any) -> ConceptDriftDetector:
    """Build the concept-drift detector called ``name``.

    Parameters
    ----------
    name
        ``"adwin"``, ``"ddm"``, ``"eddm"``, ``"hddm_a"``, ``"hddm_w"``, ``"page_hinkley"`` or
        ``"kswin"`` (river's ``ADWIN``, ``binary.DDM``, ``binary.EDDM``, ``binary.HDDMA``,
        ``binary.HDDMW``, ``PageHinkley``, ``KSWIN``).
    **params
        The river detector's parameters, e.g. ``delta`` for ADWIN; KSWIN's ``seed`` defaults
        to 0 here so that runs repeat.

    Raises
    ------
    StatisticsError
        For an unknown name or parameter (the message lists the allowed ones) or a value river
        rejects.

    Examples
    --------
    >>> make_detector("adwin", delta=0.01).params["delta"]
    0.01
    >>> make_detector("cusum")
    Traceback (most recent call last):
    ...
    driftline.errors.StatisticsError: unknown detector 'cusum'; allowed: ['adwin', 'ddm', \
'eddm', 'hddm_a', 'hddm_w', 'page_hinkley', 'kswin']
    """
    return ConceptDriftDetector(name, **params)


def detector_from_snapshot(snapshot: Mapping[str, Any]) -> ConceptDriftDetector:
    """Rebuild a detector from :meth:`ConceptDriftDetector.snapshot` output.

    >>> a = make_detector("kswin", seed=3).update(range(200))
    >>> b = detector_from_snapshot(a.snapshot())
    >>> a.update([5.0] * 50).drift_positions == b.update([5.0] * 50).drift_positions
    True
    """
    params = snapshot.get("params")
    if not isinstance(params, Mapping):
        raise StatisticsError("snapshot has no parameters")
    return make_detector(str(snapshot.get("detector")), **params).restore(snapshot)


# --- plain-data codec ----------------------------------------------------------------------
# A closed set of types: anything else in a detector's state is a river change this module has
# not been taught, and snapshot() says so instead of writing something it cannot read back.

_OBJECTS: dict[str, type[Any]] = {
    "Mean": stats.Mean,
    "Var": stats.Var,
    "EWMean": stats.EWMean,
    "HDDMW.SampleInfo": SampleInfo,
}
_OBJECT_NAMES = {cls: key for key, cls in _OBJECTS.items()}
# river's Rust objects, by class name: ADWIN's bucket structure, HDDM_W's weighted means.
_RUST_KINDS = frozenset({"AdaptiveWindowing", "RsEWMean"})


def _rust_bytes(value: Any) -> bytes | None:
    # river's Rust objects take part in pickling through __getstate__, which returns their
    # whole state as bytes (Python objects give a dict, a tuple or None). Known by name and
    # by that, they need no import from river's private extension module.
    if type(value).__name__ not in _RUST_KINDS:
        return None
    state = value.__getstate__()
    return state if isinstance(state, bytes) else None


def _rust_from_bytes(value: Mapping[str, Any], template: Any) -> Any:
    # The same attribute of a freshly built detector supplies the class, so a snapshot names no
    # class to load; the bytes carry every field, parameters included.
    if (
        template is None
        or type(template).__name__ != value["$rust"]
        or _rust_bytes(template) is None
    ):
        raise StatisticsError(f"unknown Rust state {value['$rust']!r}")
    obj = copy.copy(template)
    obj.__setstate__(base64.b64decode(value["bytes"]))
    return obj


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):  # numpy's float64 too
        number = float(value)
        return number if math.isfinite(number) else {"$float": repr(number)}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if isinstance(value, collections.deque):
        return {"$deque": [_encode(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, random.Random):
        return {"$random": _encode(value.getstate())}
    rust = _rust_bytes(value)
    if rust is not None:
        return {"$rust": type(value).__name__, "bytes": base64.b64encode(rust).decode("ascii")}
    name = _OBJECT_NAMES.get(type(value))
    if name is not None:
        attrs = {k: _encode(v) for k, v in vars(value).items() if not callable(v)}
        return {"$object": name, "attrs": attrs}
    raise TypeError(f"cannot snapshot a {type(value).__module__}.{type(value).__qualname__}")


def _decode(value: Any, template: Any = None) -> Any:
    """Rebuild an encoded value; ``template`` is what a fresh detector holds in its place."""
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$float" in value:
        return float(value["$float"])
    if "$tuple" in value:
        return tuple(_decode(v) for v in value["$tuple"])
    if "$deque" in value:
        return collections.deque(_decode(value["$deque"]), maxlen=value["maxlen"])
    if "$random" in value:
        generator = random.Random()
        generator.setstate(_decode(value["$random"]))
        return generator
    if "$rust" in value:
        return _rust_from_bytes(value, template)
    if "$object" in value:
        cls = _OBJECTS.get(value["$object"])
        if cls is None:
            raise StatisticsError(f"unknown object {value['$object']!r}")
        obj = object.__new__(cls)
        for key, item in value["attrs"].items():
            setattr(obj, key, _decode(item, getattr(template, key, None)))
        return obj
    raise StatisticsError(f"unknown encoded value with keys {sorted(value)}")


def _holds_rust_state(value: Any) -> bool:
    if isinstance(value, dict):
        return "$rust" in value or any(_holds_rust_state(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_rust_state(v) for v in value)
    return False
