"""MLflow tracking for tierwise: runs for trained routers and tuning studies, a registered pyfunc
model, backfill after outages, and cross-policy comparison.

Importing this package is cheap: MLflow is imported inside the functions that use it.
``config`` holds the `tracking:` config section; ``store`` resolves and checks the tracking URI;
``runs`` logs a trained router; ``sync`` logs a study (idempotently); ``pyfunc`` is the MLflow
model; ``compare`` reads runs back into a table and a chart.
"""

from tierwise.experiments.tracking.config import TrackingConfig
from tierwise.experiments.tracking.store import TrackingUnavailable

__all__ = ["TrackingConfig", "TrackingUnavailable"]
