"""tierwise.experiments: the CLI, Optuna studies and MLflow tracking."""
