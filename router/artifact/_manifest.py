"""The artifact manifest: its strict schema, canonical form and JSON-safety of the payload."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import Field, StrictInt, StrictStr, ValidationError, field_validator

from tierwise.router.artifact import _io as aio
from tierwise.router.artifact._io import ARRAYS_NAME, MANIFEST_NAME
from tierwise.router.errors import ArtifactError
from tierwise.router.schema import StrictModel, format_validation_error

MAX_MANIFEST_BYTES = 64 * aio.MiB
MAX_JSON_DEPTH = 64  # a manifest nests ~8 levels; deeper ones would hit recursion limits later
_SHA256 = r"^[0-9a-f]{64}$"


class FileEntry(StrictModel):
    """One stored file's sha256 and size in bytes."""

    sha256: StrictStr = Field(pattern=_SHA256)
    size: StrictInt = Field(ge=0)


class ArraySpec(StrictModel):
    """One stored array's dtype and shape."""

    dtype: StrictStr
    shape: list[StrictInt]


class Manifest(StrictModel):
    """The manifest of format version 1; unknown keys are refused."""

    format_version: StrictInt
    tierwise_version: StrictStr
    created_at: StrictStr
    payload: dict[str, Any]
    arrays: dict[str, ArraySpec]
    files: dict[str, FileEntry]
    checksum: StrictStr = Field(pattern=_SHA256)

    @field_validator("created_at")
    @classmethod
    def _utc_iso(cls, value: str) -> str:
        stamp = datetime.fromisoformat(value)  # ValueError becomes a validation error
        offset = stamp.utcoffset()
        if offset is None or offset.total_seconds() != 0:
            raise ValueError("must be an ISO 8601 time in UTC")
        return value

    @field_validator("files")
    @classmethod
    def _v1_files(cls, value: dict[str, FileEntry]) -> dict[str, FileEntry]:
        if set(value) != {ARRAYS_NAME}:
            raise ValueError(f"must list exactly {ARRAYS_NAME!r}, got {sorted(value)}")
        return value


def json_safe(value: Any, where: str) -> Any:
    """A copy of ``value`` made of JSON types only (numpy scalars become Python numbers)."""
    if isinstance(value, np.generic) and not isinstance(value, np.ndarray):
        value = value.item()
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ArtifactError(
                f"`{where}` must be a finite number, got {value}; JSON has no NaN or infinity — "
                "store null or leave the key out"
            )
        return float(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArtifactError(
                    f"`{where}` keys must be strings, got {key!r}; convert with str()"
                )
            out[key] = json_safe(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [json_safe(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, np.ndarray):
        raise ArtifactError(
            f"`{where}` is a numpy array; pass it in `arrays` (or convert it with .tolist())"
        )
    raise ArtifactError(
        f"`{where}` must be JSON-safe (dict, list, str, int, float, bool or None), got "
        f"{type(value).__name__}; convert it, e.g. with str()"
    )


def canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes the manifest ``checksum`` covers: sorted, compact JSON of all other keys."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_json(data: bytes, where: str) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys (an edit could hide behind one),
    at most MAX_JSON_DEPTH levels deep."""
    try:
        value = json.loads(
            data.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_reject_constant
        )
        too_deep = json_depth(value) > MAX_JSON_DEPTH
    except (UnicodeDecodeError, ValueError) as err:
        raise ArtifactError(
            f"{where} is not valid JSON ({str(err)[:200]}); restore it or re-export the artifact"
        ) from None
    except RecursionError:  # the parser's own limit (~1000 levels)
        too_deep = True
    if too_deep:
        raise ArtifactError(
            f"{where} nests JSON more than {MAX_JSON_DEPTH} levels deep; a tierwise manifest is "
            "a few levels deep — restore it or re-export the artifact"
        )
    return value


def validate_manifest(raw: dict[str, Any], where: str) -> Manifest:
    """The manifest checked against the strict schema; ArtifactError naming the bad field."""
    try:
        return Manifest.model_validate(raw)
    except ValidationError as err:
        raise ArtifactError(
            format_validation_error(err, where) + "; re-export the artifact"
        ) from None


def files_table(raw: dict[str, Any], where: str) -> dict[str, FileEntry]:
    """The container's file table, checked in every format version's terms."""
    files = raw.get("files")
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{where}: `files` must be a non-empty mapping; re-export the artifact")
    out = {}
    for name, entry in files.items():
        if name == MANIFEST_NAME or not aio.ARRAY_NAME.match(name):
            raise ArtifactError(f"{where}: `files` lists an invalid file name {name!r}")
        try:
            out[name] = FileEntry.model_validate(entry)
        except ValidationError as err:
            raise ArtifactError(format_validation_error(err, f"{where}: files.{name}")) from None
    return out


def check_specs(manifest: Manifest, arrays: dict[str, np.ndarray], where: str) -> None:
    """The loaded arrays must be exactly the ones the manifest describes."""
    if set(arrays) != set(manifest.arrays):
        raise ArtifactError(
            f"{where} holds arrays {sorted(arrays)} but the manifest lists "
            f"{sorted(manifest.arrays)}; re-export the artifact"
        )
    for name, spec in manifest.arrays.items():
        arr = arrays[name]
        if arr.dtype.str != spec.dtype or list(arr.shape) != spec.shape:
            raise ArtifactError(
                f"array `{name}` in {where} is {arr.dtype.str} {list(arr.shape)} but the manifest "
                f"says {spec.dtype} {spec.shape}; re-export the artifact"
            )
