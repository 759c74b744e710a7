"""Helpers for the artifact tests: rewrite an artifact the way an attacker or a broken disk would.

The manifest checksum is recomputed here from the documented rule (sha256 of the sorted, compact
JSON of every key but ``checksum``), independently of router/artifact/_manifest.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]


def manifest_checksum(manifest: Manifest) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def sealed(manifest: Manifest, members: dict[str, bytes]) -> bytes:
    """Manifest bytes whose `files` table and checksum match ``members`` (a forger's fix-up)."""
    manifest = dict(manifest)
    manifest["files"] = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in members.items()
    }
    manifest["checksum"] = manifest_checksum(manifest)
    return json.dumps(manifest, indent=2).encode("utf-8")


def read_members(path: Path) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and the other members of a directory or single-file artifact."""
    if path.is_dir():
        files = {p.name: p.read_bytes() for p in sorted(path.iterdir())}
    else:
        with zipfile.ZipFile(path) as zf:
            files = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    return manifest, files


def write_zip(
    path: Path, members: list[tuple[str, bytes]], compress: int = zipfile.ZIP_STORED
) -> None:
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, data in members:
            zf.writestr(name, data)


def forge(
    path: Path,
    edit_manifest: Callable[[Manifest], None] | None = None,
    members: dict[str, bytes] | None = None,
) -> None:
    """Rewrite the artifact at ``path`` with edits, then fix up hashes and checksum to match."""
    manifest, old = read_members(path)
    new = old if members is None else members
    if edit_manifest is not None:
        edit_manifest(manifest)
    data = sealed(manifest, new)
    if path.is_dir():
        (path / "manifest.json").write_bytes(data)
        for name, blob in new.items():
            (path / name).write_bytes(blob)
    else:
        write_zip(path, [("manifest.json", data), *new.items()])


def npz_with(members: dict[str, bytes]) -> bytes:
    """An .npz built from raw .npy member bytes (so tests can plant anything in it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()
