"""`tierwise bench`: router quality on any dataset, over seeded splits, against every baseline.

For each experiment config and split seed (the config's own train / calibration / test
fractions, only the seed changes) every configuration (predictor × policy × normalization ×
calibration) is fitted on train and calibration exactly as ``tierwise train`` would, and its
swept curve is scored ONCE on the test split: AIQ, gap closed between the zero router (0) and
the oracle (1), the cost at which it reaches 95% / 100% of the best single model's quality, and
its own operating point (the knob it chose without seeing test). Embeddings are computed once
per dataset and normalization and kept in the embedding cache.

Modules: ``spec`` (configurations), ``data`` (datasets and cached embeddings), ``engine``
(fit and score), ``summary`` (mean ± CI tables, JSON, Markdown).
"""
