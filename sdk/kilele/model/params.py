"""Model parameters to bytes and back, without pickle.

Parameters are a dict of str, int, float, bool, bytes and numpy arrays. They are stored as one
``.npz`` archive (arrays and bytes as arrays, everything else in a JSON entry), so loading
parameters never executes code.
"""
from __future__ import annotations

import io
import json
from typing import Any, Union

import numpy as np

ParamValue = Union[str, int, float, bool, bytes, np.ndarray, None]
Params = dict[str, ParamValue]

_SCALARS = "__scalars__"
_BYTES = "__bytes__"


def serialize_params(params: Params) -> bytes:
    if not isinstance(params, dict):
        raise TypeError(f"dump_parameters() must return a dict, got {type(params).__name__}")
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    byte_keys: list[str] = []
    for name, value in params.items():
        if not isinstance(name, str) or name in (_SCALARS, _BYTES):
            raise TypeError(f"parameter names must be strings (and not {_SCALARS}/{_BYTES}), got {name!r}")
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise TypeError(f"parameter {name!r} is an object array; use numeric arrays, str or bytes")
            arrays[name] = value
        elif isinstance(value, (bytes, bytearray)):
            arrays[name] = np.frombuffer(bytes(value), dtype=np.uint8)
            byte_keys.append(name)
        elif value is None or isinstance(value, (str, int, float, bool)):
            scalars[name] = value
        elif isinstance(value, np.generic):
            scalars[name] = value.item()
        else:
            raise TypeError(
                f"parameter {name!r} has type {type(value).__name__}; use str, int, float, bool, bytes or numpy arrays"
            )
    meta = json.dumps({"scalars": scalars, "bytes": byte_keys}).encode()
    arrays[_SCALARS] = np.frombuffer(meta, dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def deserialize_params(data: bytes) -> Params:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        meta = json.loads(archive[_SCALARS].tobytes())
        params: Params = dict(meta["scalars"])
        for name in archive.files:
            if name == _SCALARS:
                continue
            value = archive[name]
            params[name] = value.tobytes() if name in meta["bytes"] else value
    return params
