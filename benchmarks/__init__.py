"""The performance suite: tracker measured side by side with MLflow (``python -m benchmarks``).

Stdlib only at import time: the MLflow venv imports this package to run its side's jobs.
"""
