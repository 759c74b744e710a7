"""Prompt embedders: a small contract, a registry by short name, and the built-in embedders.

``get_embedder("minilm")`` (default), ``get_embedder("sentence-transformers:/path/to/model")`` and
``get_embedder("hashing:64")`` (deterministic, no torch; for tests), ``get_embedder("onnx:<dir>")``
(an ONNX export from router.artifact.export_onnx: no torch at run time). Importing this
package never imports torch: models load when an embedder is built.
"""

from tierwise.router.embed import hashing as _hashing
from tierwise.router.embed import onnx as _onnx
from tierwise.router.embed import sentence as _sentence
from tierwise.router.embed import static as _static
from tierwise.router.embed.base import (
    Embedder,
    available_embedders,
    get_embedder,
    l2_normalize,
    register_embedder,
)
from tierwise.router.embed.hashing import HashingEmbedder
from tierwise.router.embed.onnx import OnnxEmbedder
from tierwise.router.embed.sentence import SentenceTransformerEmbedder
from tierwise.router.embed.static import StaticEmbedder

DEFAULT_EMBEDDER = "minilm"

__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "HashingEmbedder",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "StaticEmbedder",
    "available_embedders",
    "get_embedder",
    "l2_normalize",
    "register_embedder",
]

del _hashing, _onnx, _sentence, _static  # imported for their registrations
