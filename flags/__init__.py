"""The repository's flag tools: `cli_reference` writes docs/cli.md from the flag definitions.

The flags themselves are defined once, inside the installed package (`imbal_keras.cli.experiment_flags`,
`imbal_keras.cli.grid_flags`), so that `imbal-keras` and `python -m imbal_keras` have them; they are served here
too, so that `from flags import experiment_flags` keeps working in the repository.
"""

from imbal_keras.cli import experiment_flags, grid_flags

__all__ = ["experiment_flags", "grid_flags"]
