"""imbal_keras: rebalancing, training instrumentation and seed-aware comparisons for imbalanced data."""

__version__ = "0.1.0"
