"""State export shared by every fitted component an artifact stores.

A component's state is ``(params, arrays)``: a JSON-safe dict and numeric numpy arrays, never a
pickle. :class:`StateExport` writes the format version into ``params`` and checks it on the way
back, and turns a missing key or a malformed value into one :class:`ArtifactError` naming the
component; a subclass only says what its state holds (:meth:`StateExport._state`) and how to
rebuild itself from it (:meth:`StateExport._from_state`). Used by the quality predictors, the
calibrator, the output-length model and the expected-cost model.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from tierwise.router.errors import ArtifactError, ConfigError

__all__ = ["STATE_FORMAT", "State", "StateExport"]

State = tuple[dict[str, Any], dict[str, np.ndarray]]

STATE_FORMAT = 1


class StateExport:
    """Mixin: ``get_state()`` / ``from_state(params, arrays)`` with one format check.

    ``state_kind`` names the component in errors ("calibrator state format must be 1 ...").
    ``unversioned_ok``: states written before the component recorded its format carry no
    ``format`` key; they are read as format 1 (the expected-cost model, for artifacts saved
    before this base existed).
    """

    state_kind: ClassVar[str] = "component"
    state_format: ClassVar[int] = STATE_FORMAT
    unversioned_ok: ClassVar[bool] = False

    def _state(self) -> State:
        """``(params, arrays)`` without the format key; raise NotFittedError when unfitted."""
        raise NotImplementedError

    @classmethod
    def _from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        """Rebuild from a checked-format state; KeyError/TypeError/ValueError mean malformed."""
        raise NotImplementedError

    def get_state(self) -> State:
        """``(params, arrays)``: JSON-safe dict and numeric arrays that rebuild this object."""
        params, arrays = self._state()
        return {"format": self.state_format, **params}, dict(arrays)

    @classmethod
    def _state_label(cls) -> str:
        return cls.state_kind

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        """Rebuild from :meth:`get_state` output; ArtifactError if it is from another format
        or incomplete."""
        label = cls._state_label()
        if not isinstance(params, dict):
            raise ArtifactError(
                f"{label} state must be a JSON object, got {type(params).__name__}; "
                "the artifact is corrupted"
            )
        missing = "format" not in params
        fmt = cls.state_format if missing and cls.unversioned_ok else params.get("format")
        if fmt != cls.state_format:
            raise ArtifactError(
                f"{label} state format must be {cls.state_format}, got {params.get('format')!r}; "
                "re-export the artifact with this version of tierwise"
            )
        try:
            return cls._from_state(params, arrays)
        except ArtifactError:
            raise
        except (KeyError, TypeError, ValueError, ConfigError) as err:
            raise ArtifactError(f"{label} state is incomplete or invalid: {err!r}") from None
