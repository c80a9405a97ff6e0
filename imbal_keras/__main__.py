"""`python -m imbal_keras`: the command (`imbal_keras.cli.main`), as `imbal-keras` and `run_experiment.py`."""

from imbal_keras.cli.main import run

if __name__ == "__main__":
    run()
