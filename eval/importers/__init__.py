"""Importers: routing logs described by a YAML data config (not code) → RoutingDataset.

Wide logs (a column per model) and long logs (a row per prompt × model), in CSV, Parquet,
JSONL or Hugging Face datasets, joined on an id when a dataset comes in pieces.
"""

from tierwise.eval.importers.config import (
    ColumnsConfig,
    CostConfig,
    DataConfig,
    LabelConfig,
    SourceConfig,
)
from tierwise.eval.importers.load import import_dataset

__all__ = [
    "ColumnsConfig",
    "CostConfig",
    "DataConfig",
    "LabelConfig",
    "SourceConfig",
    "import_dataset",
]
