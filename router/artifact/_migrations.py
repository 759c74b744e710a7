"""Upgrades for router artifacts written by older tierwise versions.

Format version 1 is the first released format, so the registry starts empty. When a change to the
manifest, the payload or the stored arrays needs a new format version:

1. bump ``tierwise.router.artifact.FORMAT_VERSION`` to N;
2. register a function upgrading version N-1 to N here with ``@register_migration(N - 1)``;
3. commit an artifact written by the new code under ``tests/fixtures/artifacts/vN/``; the
   fixtures of every older version stay committed and must keep loading (tests/test_artifact*.py).

What a migration may rely on: the *container* is frozen since version 1 — ``manifest.json`` with
``format_version``, a ``files`` table (sha256 and size of each stored file) and a ``checksum`` of
the canonical manifest. The loader verifies all of that in the stored version's terms, loads the
arrays (pickle-free), then hands the manifest and the arrays to the migrations, oldest first. Each
migration returns a manifest describing the next version (including ``format_version``) and the
arrays.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from tierwise.router.errors import ArtifactError

Arrays = dict[str, np.ndarray]
Migration = Callable[[dict[str, Any], Arrays], tuple[dict[str, Any], Arrays]]

# from_version -> function producing a version from_version + 1 manifest and arrays.
MIGRATIONS: dict[int, Migration] = {}


def register_migration(from_version: int) -> Callable[[Migration], Migration]:
    """Decorator: register ``fn`` as the upgrade from ``from_version`` to ``from_version + 1``."""

    def decorate(fn: Migration) -> Migration:
        if from_version in MIGRATIONS:
            raise ValueError(
                f"a migration from artifact format version {from_version} exists already"
            )
        MIGRATIONS[from_version] = fn
        return fn

    return decorate


def oldest_readable(current: int) -> int:
    """The oldest format version an upgrade path could start from (``current`` if none)."""
    return min([*MIGRATIONS, current])


def check_migratable(from_version: int, to_version: int, where: str) -> None:
    """Raise unless every upgrade from ``from_version`` to ``to_version`` is registered."""
    # The first gap only: a hostile version such as -10**12 must not build a huge list.
    missing = next((v for v in range(from_version, to_version) if v not in MIGRATIONS), None)
    if missing is not None:
        raise ArtifactError(
            f"{where}: artifact format version {from_version} is older than any this tierwise can "
            f"read (supports {to_version}; no upgrade from version {missing}); re-export the "
            "router with the current tierwise"
        )


def migrate(
    manifest: dict[str, Any], arrays: Arrays, from_version: int, to_version: int, where: str
) -> tuple[dict[str, Any], Arrays]:
    """Apply the registered upgrades in order; the inputs are not modified."""
    check_migratable(from_version, to_version, where)
    manifest = copy.deepcopy(manifest)
    arrays = dict(arrays)
    for version in range(from_version, to_version):
        try:
            manifest, arrays = MIGRATIONS[version](manifest, arrays)
        except ArtifactError:
            raise
        except Exception as err:  # a migration bug must still surface as one clear line
            raise ArtifactError(
                f"{where}: upgrading the artifact from format version {version} to {version + 1} "
                f"failed ({type(err).__name__}: {err}); re-export the router with the current "
                "tierwise"
            ) from err
        if manifest.get("format_version") != version + 1:
            raise ArtifactError(
                f"{where}: the upgrade from format version {version} must set `format_version` to "
                f"{version + 1}, got {manifest.get('format_version')!r}; fix the migration"
            )
    return manifest, arrays
