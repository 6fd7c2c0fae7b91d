"""What the caches store beside their arrays and check before serving them.

A manifest names each array's shape, dtype and BLAKE2b digest (BLAKE2b: about twice
sha256's speed here, and the digest only has to catch corruption and tampering).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np


def _bytes(array: Any) -> np.ndarray:
    if hasattr(array, "numpy"):  # a torch tensor
        array = array.detach().cpu().numpy()
    return np.ascontiguousarray(array)


def manifest(arrays: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: {"shape", "dtype", "blake2b"}}`` for each array (numpy or torch)."""
    out = {}
    for name, array in arrays.items():
        a = _bytes(array)
        digest = hashlib.blake2b(a.view(np.uint8).reshape(-1), digest_size=16).hexdigest()
        out[name] = {"shape": list(a.shape), "dtype": str(a.dtype), "blake2b": digest}
    return out


def mismatches(arrays: Mapping[str, Any], expected: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What differs between ``arrays`` and the ``expected`` manifest (empty: all verified)."""
    problems = [f"{name}: missing" for name in expected if name not in arrays]
    problems += [f"{name}: not in the manifest" for name in arrays if name not in expected]
    actual = manifest({k: v for k, v in arrays.items() if k in expected})
    for name, got in actual.items():
        for field in ("shape", "dtype", "blake2b"):
            if got[field] != expected[name].get(field):
                problems.append(f"{name}: {field} {got[field]} != {expected[name].get(field)}")
                break
    return problems
