"""Router artifacts: a small, versioned, checksummed and pickle-free directory or single file.

A directory artifact holds two files; a ``.tierwise`` artifact is one zip holding the same two:

- ``manifest.json``: ``format_version``, ``tierwise_version``, ``created_at`` (UTC ISO 8601),
  ``payload`` (the router's own JSON description), ``arrays`` (dtype and shape of each array),
  ``files`` (sha256 and size of each stored file) and ``checksum``, the sha256 of the canonical JSON
  of everything else, so editing the manifest is detected.
- ``arrays.npz``: one uncompressed ``.npy`` member per array (numeric, bool or unicode dtypes only).

Trust model: the hashes detect corruption, truncation and edits; they do not authenticate (anyone
can recompute them). Loading a hostile file is still safe because nothing is unpickled
(``allow_pickle=False`` plus a dtype allow-list), the manifest is validated strictly, zip member
names are never used as paths and every size is capped before anything is read.

Unlisted files: in a directory they are ignored — never opened, no effect — so a README or a
stray editor file beside an artifact is harmless. In a ``.tierwise`` zip they are refused: the zip
is written only by ``save_artifact`` with exactly two members, so anything else means tampering.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.router import __version__
from tierwise.router.artifact import _io as aio
from tierwise.router.artifact._io import (
    ARRAYS_NAME,
    MANIFEST_NAME,
    SINGLE_FILE_SUFFIX,
    ArtifactSource,
)
from tierwise.router.artifact._manifest import (
    MAX_MANIFEST_BYTES,
    canonical,
    check_specs,
    files_table,
    json_safe,
    parse_json,
    validate_manifest,
)
from tierwise.router.artifact._migrations import check_migratable, migrate, oldest_readable
from tierwise.router.errors import ArtifactError
from tierwise.router.schema import bounded_repr

__all__ = [
    "FORMAT_VERSION",
    "LoadedArtifact",
    "artifact_info",
    "load_artifact",
    "save_artifact",
]

FORMAT_VERSION: int = 1


@dataclass(frozen=True)
class LoadedArtifact:
    """A verified artifact. ``format_version`` is the version stored on disk (older ones are
    migrated: ``manifest`` and ``arrays`` are then in the current version's terms)."""

    manifest: dict[str, Any]
    payload: dict[str, Any]
    arrays: dict[str, np.ndarray]
    format_version: int
    path: Path


# ---------------------------------------------------------------- saving


def _checked_arrays(arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(arrays, dict):
        raise ArtifactError(
            f"`arrays` must be a dict of name -> numpy array, got {type(arrays).__name__}"
        )
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not aio.ARRAY_NAME.match(name):
            raise ArtifactError(
                f"array name must be 1-128 letters, digits, `_`, `.` or `-` (not starting with `.` "
                f"or `-`), got {name!r}; rename it"
            )
        arr = np.asarray(value)
        aio.check_dtype(arr, name, "`arrays`")
        if arr.nbytes > aio.MAX_MEMBER_BYTES:
            raise ArtifactError(
                f"array `{name}` is {aio.fmt_bytes(arr.nbytes)}, more than the artifact limit "
                f"{aio.fmt_bytes(aio.MAX_MEMBER_BYTES)}; store a smaller dtype or fewer rows"
            )
        out[name] = arr
    total = sum(a.nbytes for a in out.values())
    if total > aio.MAX_MEMBER_BYTES:  # arrays.npz is one member: load_artifact would refuse it
        raise ArtifactError(
            f"`arrays` hold {aio.fmt_bytes(total)} together, more than the artifact limit "
            f"{aio.fmt_bytes(aio.MAX_MEMBER_BYTES)}; store smaller dtypes or fewer rows"
        )
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary sibling and rename, so readers never see a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; an artifact is meant to be shared and read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_zip_artifact(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return MANIFEST_NAME in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def save_artifact(
    path: str | Path,
    payload: dict[str, Any],
    arrays: dict[str, np.ndarray],
    *,
    single_file: bool | None = None,
) -> Path:
    """Write a router artifact; return its path.

    ``single_file=None`` means: one zip file if ``path`` ends with ``.tierwise``, else a directory.
    An existing artifact at ``path`` is replaced; any other existing file or non-empty directory is
    refused rather than overwritten. Tuples in ``payload`` come back as lists.
    """
    target = Path(path)
    single = target.suffix == SINGLE_FILE_SUFFIX if single_file is None else single_file
    if not isinstance(payload, dict):
        raise ArtifactError(f"`payload` must be a dict, got {type(payload).__name__}")

    clean_payload = json_safe(payload, "payload")
    clean_arrays = _checked_arrays(arrays)
    npz = aio.npz_bytes(clean_arrays)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "tierwise_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "payload": clean_payload,
        "arrays": {
            k: {"dtype": a.dtype.str, "shape": list(a.shape)}
            for k, a in sorted(clean_arrays.items())
        },
        "files": {ARRAYS_NAME: {"sha256": hashlib.sha256(npz).hexdigest(), "size": len(npz)}},
    }
    manifest["checksum"] = hashlib.sha256(canonical(manifest)).hexdigest()
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    manifest_bytes = (text + "\n").encode("utf-8")
    try:
        if single:
            _write_single(target, manifest_bytes, npz)
        else:
            _write_directory(target, manifest_bytes, npz)
    except OSError as err:
        raise ArtifactError(
            f"cannot write artifact {target}: {err.strerror or err}; check that the location is "
            "writable and has free space"
        ) from None
    return target


def _write_single(target: Path, manifest_bytes: bytes, npz: bytes) -> None:
    if target.is_dir():
        raise ArtifactError(
            f"{target} is a directory; pass a file path for a single-file artifact or set "
            "single_file=False"
        )
    if target.exists() and not _is_zip_artifact(target):
        raise ArtifactError(
            f"{target} exists and is not a tierwise artifact; refusing to overwrite it — choose "
            "another path or remove the file"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(aio.zip_info(MANIFEST_NAME, zipfile.ZIP_DEFLATED), manifest_bytes)
        # Stored: embeddings barely deflate (~8%) and stored members load without inflating.
        zf.writestr(aio.zip_info(ARRAYS_NAME, zipfile.ZIP_STORED), npz)
    _atomic_write(target, buf.getvalue())


def _write_directory(target: Path, manifest_bytes: bytes, npz: bytes) -> None:
    if target.exists() and not target.is_dir():
        raise ArtifactError(
            f"{target} exists and is a file; choose another path, or end it with "
            f"{SINGLE_FILE_SUFFIX!r} to write a single-file artifact"
        )
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST_NAME).is_file():
        raise ArtifactError(
            f"{target} is a non-empty directory without {MANIFEST_NAME}; refusing to write an "
            "artifact into it — choose a new or empty directory"
        )
    target.mkdir(parents=True, exist_ok=True)
    # Arrays first, manifest last: a crash in between leaves a manifest whose hashes do not match,
    # which load_artifact refuses, never a silently mixed router.
    _atomic_write(target / ARRAYS_NAME, npz)
    _atomic_write(target / MANIFEST_NAME, manifest_bytes)


# ---------------------------------------------------------------- loading


def _read_manifest(src: ArtifactSource) -> tuple[dict[str, Any], int]:
    """Parse the manifest, refuse newer or unmigratable versions, and verify its checksum."""
    where = src.where(MANIFEST_NAME)
    src.require(MANIFEST_NAME, MAX_MANIFEST_BYTES)
    raw = parse_json(src.read(MANIFEST_NAME), where)
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise ArtifactError(
            f"{where} must be a JSON object with an integer `format_version`, got "
            f"{bounded_repr(version)}; this is not a tierwise artifact manifest"
        )
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{where}: artifact format version {bounded_repr(version)} is newer than this "
            f"tierwise (supports "
            f"≤ {FORMAT_VERSION}); upgrade tierwise"
        )
    oldest = oldest_readable(FORMAT_VERSION)
    if version < oldest:  # cheap checks first: no migration loop over a wild range
        raise ArtifactError(
            f"{where}: artifact format version {bounded_repr(version)} is older than any this "
            f"tierwise can read (`format_version` must be from {oldest} to {FORMAT_VERSION}); "
            "re-export the router with the current tierwise"
        )
    checksum = raw.get("checksum")
    try:
        actual = hashlib.sha256(canonical(raw)).hexdigest()
    except ValueError:
        actual = None
    if actual is None or checksum != actual:
        raise ArtifactError(
            f"{where} was modified after it was written (its `checksum` does not match its "
            "content); restore the original manifest or re-export the artifact"
        )
    check_migratable(version, FORMAT_VERSION, where)
    return raw, version


def _open_manifest(src: ArtifactSource) -> tuple[dict[str, Any], int, dict[str, Any], str]:
    """Read and check the manifest; return it, its format version, its files table, its label."""
    mwhere = src.where(MANIFEST_NAME)
    raw, version = _read_manifest(src)
    if version == FORMAT_VERSION:
        validate_manifest(raw, mwhere)
    return raw, version, files_table(raw, mwhere), mwhere


def load_artifact(path: str | Path) -> LoadedArtifact:
    """Load and fully verify an artifact (checksums, sizes, dtypes); migrate older formats."""
    root = Path(path)
    with ArtifactSource(root) as src:
        raw, version, files, mwhere = _open_manifest(src)
        if src.zf is not None:
            unlisted = sorted(set(src.members) - set(files) - {MANIFEST_NAME})
            if unlisted:
                raise ArtifactError(
                    f"{root} contains members not listed in its manifest: {unlisted}; refusing "
                    "an altered artifact — re-export it"
                )
        blobs = {}
        for name, entry in files.items():
            size = src.require(name, aio.MAX_MEMBER_BYTES)
            if size != entry.size:
                raise ArtifactError(
                    f"{src.where(name)} is {size} bytes but the manifest says {entry.size} "
                    "(truncated or replaced); restore the file or re-export the artifact"
                )
            data = src.read(name)
            if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
                raise ArtifactError(
                    f"{src.where(name)} does not match the sha256 in the manifest (the file was "
                    "modified or corrupted); restore the file or re-export the artifact"
                )
            blobs[name] = data
        arrays = {}
        if ARRAYS_NAME in blobs:  # always in version 1; a migration may supply it for older ones
            arrays = aio.load_npz(blobs[ARRAYS_NAME], src.where(ARRAYS_NAME))
    if version < FORMAT_VERSION:
        raw, arrays = migrate(raw, arrays, version, FORMAT_VERSION, mwhere)
    manifest = validate_manifest(raw, mwhere)
    check_specs(manifest, arrays, src.where(ARRAYS_NAME))
    return LoadedArtifact(
        manifest=raw, payload=raw["payload"], arrays=arrays, format_version=version, path=root
    )


def artifact_info(path: str | Path) -> dict[str, Any]:
    """Summarize an artifact from its manifest without loading arrays (for `tierwise info`).

    Verifies the manifest checksum and the stored files' sizes; load_artifact also verifies hashes.
    """
    root = Path(path)
    with ArtifactSource(root) as src:
        raw, version, files, _ = _open_manifest(src)
        for name, entry in files.items():
            if src.require(name, aio.MAX_MEMBER_BYTES) != entry.size:
                raise ArtifactError(
                    f"{src.where(name)} is not the size the manifest says ({entry.size} bytes); "
                    "restore the file or re-export the artifact"
                )
        manifest_size = src.size(MANIFEST_NAME) or 0
    return {
        "path": str(root),
        "kind": src.kind,
        "format_version": version,
        "tierwise_version": raw.get("tierwise_version"),
        "created_at": raw.get("created_at"),
        "checksum": raw.get("checksum"),
        "payload": raw.get("payload"),
        "arrays": raw.get("arrays", {}),
        "files": {name: entry.model_dump() for name, entry in files.items()},
        "total_bytes": manifest_size + sum(e.size for e in files.values()),
    }
