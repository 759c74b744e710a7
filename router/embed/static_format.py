"""The files of a static encoder folder, shared by the loader (static) and the distiller.

Kept apart so that ``static`` (run time) and ``static_distill`` (offline) do not import each
other: the loader calls the distiller on first use, the distiller writes this format.
"""

from __future__ import annotations

import hashlib

FORMAT = "tierwise-static-embedder"
VECTORS_FILE = "vectors.npy"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "static.json"


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data`` (each stored file's checksum in ``static.json``)."""
    return hashlib.sha256(data).hexdigest()
