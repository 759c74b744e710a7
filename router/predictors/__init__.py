"""Quality predictors: prompt embedding -> P(success) per model tier, by short name.

Every implementation trains with numpy (scikit-learn imported lazily inside ``fit`` where
used) and predicts in pure numpy from an exported ``(params, arrays)`` state.
"""

from tierwise.router.predictors import (  # noqa: F401 - registers the predictors
    irt,
    knn,
    logreg,
    mf,
    mlp,
    stack,
)
from tierwise.router.predictors.base import NotFittedError, QualityPredictor, State
from tierwise.router.predictors.registry import (
    available_predictors,
    get_predictor,
    load_predictor,
    predictor_class,
    register_predictor,
)

__all__ = [
    "NotFittedError",
    "QualityPredictor",
    "State",
    "available_predictors",
    "get_predictor",
    "load_predictor",
    "predictor_class",
    "register_predictor",
]
