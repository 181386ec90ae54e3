"""A fitted model as bytes and back: the format the registry stores models in.

Format ``driftline-model/pickle-5``: one header line of JSON, then the payload::

    DRIFTLINE-MODEL {"format": "pickle-5", "driftline": "0.4.0", "sha256": "…", "length": 1234}\\n
    <the model pickled with protocol 5>

``format`` names the payload's encoding (pickle protocol 5, the way river models are saved in
practice), ``driftline`` the version that wrote it, ``sha256`` and ``length`` the payload's
hash and size. :func:`load` refuses bytes whose magic, header, format, length or hash does not
match (:class:`~driftline.errors.ModelFormatError`) before it unpickles anything.

Unpickling runs code: the header's hash only catches corruption and truncation, not a forger,
who can recompute it. So only bytes read from driftline's own registry may be passed to
:func:`load`: the registry keeps the models under its own directory (it resolves and checks
every path it reads against its root) and records each model's hash in its metadata, and the
caller passes that hash as ``expected_sha256`` so bytes swapped on disk are refused too.
Never load a model from a path or bytes a message or a user supplied.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from dataclasses import dataclass
from importlib import metadata

import orjson

from driftline.errors import ModelFormatError
from driftline.trainer.protocol import FittedModel

__all__ = ["FORMAT", "MAGIC", "ModelHeader", "dumps", "load", "read_header"]

MAGIC = b"DRIFTLINE-MODEL "
"""The first bytes of every serialised model."""
FORMAT = "pickle-5"
"""The payload encoding this driftline writes and reads."""
_PROTOCOL = 5
_MAX_HEADER = 4096


def _driftline_version() -> str:
    try:
        return metadata.version("driftline")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ModelHeader:
    """What a serialised model's header says about its payload."""

    format: str
    driftline: str
    sha256: str
    length: int


def dumps(model: FittedModel) -> bytes:
    """``model`` as bytes in the format above.

    >>> from driftline.trainer.builtin import RiverTrainer
    >>> from driftline.trainer.protocol import Example, Examples
    >>> model = RiverTrainer("regression").fit(Examples.of([Example("a", 0, {"x": 1.0}, 2.0, "1")]))
    >>> data = dumps(model)
    >>> data.startswith(MAGIC), read_header(data).format
    (True, 'pickle-5')
    >>> load(data).predict([{"x": 1.0}]) == model.predict([{"x": 1.0}])
    True
    """
    payload = pickle.dumps(model, protocol=_PROTOCOL)
    header = orjson.dumps(
        {
            "format": FORMAT,
            "driftline": _driftline_version(),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "length": len(payload),
        }
    )
    return MAGIC + header + b"\n" + payload


def _split(data: bytes) -> tuple[ModelHeader, memoryview]:
    if not data.startswith(MAGIC):
        raise ModelFormatError("not a serialised driftline model: the magic bytes are missing")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER)
    if end < 0:
        raise ModelFormatError("the model's header line is missing or too long")
    try:
        fields = orjson.loads(data[len(MAGIC) : end])
        header = ModelHeader(
            format=str(fields["format"]),
            driftline=str(fields["driftline"]),
            sha256=str(fields["sha256"]),
            length=int(fields["length"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"the model's header is not valid: {exc}") from exc
    return header, memoryview(data)[end + 1 :]


def read_header(data: bytes) -> ModelHeader:
    """The header of a serialised model (its payload is not checked nor read)."""
    return _split(data)[0]


def load(data: bytes, *, expected_sha256: str | None = None) -> FittedModel:
    """The model in ``data``; only for bytes from driftline's registry (see above).

    Refuses (:class:`~driftline.errors.ModelFormatError`) an unknown format, a payload whose
    length or SHA-256 differs from the header's, a hash other than ``expected_sha256`` (the
    registry's record of it) and a payload that is not a fitted model.
    """
    header, payload = _split(data)
    if header.format != FORMAT:
        raise ModelFormatError(
            f"the model is in format {header.format!r}; this driftline reads {FORMAT!r}"
        )
    if len(payload) != header.length:
        raise ModelFormatError(
            f"the model's payload is {len(payload)} bytes; its header says {header.length}"
        )
    digest = hashlib.sha256(payload).hexdigest()
    if not hmac.compare_digest(digest, header.sha256):
        raise ModelFormatError("the model's payload does not match the SHA-256 in its header")
    if expected_sha256 is not None and not hmac.compare_digest(digest, expected_sha256):
        raise ModelFormatError(
            "the model's payload does not match the SHA-256 the registry recorded for it"
        )
    model = pickle.loads(payload)
    if not isinstance(model, FittedModel):
        raise ModelFormatError(f"the payload holds a {type(model).__name__}, not a fitted model")
    return model
