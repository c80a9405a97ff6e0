"""Worked examples: a transactions table with categorical and missing values, and a model for it (docs/datasets.md)."""
