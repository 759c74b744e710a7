"""tierwise.eval: routing datasets, the cost model, splits, metrics and baselines."""
