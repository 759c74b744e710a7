"""tierwise.router: the production part — embed prompts, predict tier quality, decide, load.

Light dependencies only; never imports ``eval``, ``experiments``, optuna or mlflow.
"""

from tierwise.router.errors import ArtifactError, ConfigError, DataError, TierwiseError

__all__ = ["ArtifactError", "ConfigError", "DataError", "TierwiseError", "__version__"]

__version__ = "0.1.0"
