"""First predictions of the built-in MLP at a 1:99 prior, with a random and with a zero output kernel.

    python -m examples.initial_predictions

Prints, over 5 initialisation seeds, the mean first prediction on the training split (the prior is 0.01), its
spread across examples (standard deviation, 5th and 95th percentiles): what docs/models.md quotes.
"""

from __future__ import annotations

import numpy as np

from imbal_keras import models
from imbal_keras.data import sources


def main() -> None:
    data = sources.synthetic(num_examples=10_000, num_features=20, imbalance_ratio=99, seed=0)
    for zero in (False, True):
        rows = []
        for seed in range(5):
            model = models.build(
                (20,), 2, hidden_units=(64, 64), training_distribution=[0.99, 0.01], zero_output_kernel=zero, seed=seed
            )
            p = model.predict(data.train.x, verbose=0)[:, 0]
            rows.append((p.mean(), p.std(), np.quantile(p, 0.05), np.quantile(p, 0.95)))
        r = np.array(rows)
        print(
            f"{'zero' if zero else 'random'} output kernel: mean first prediction {r[:, 0].mean():.4f} "
            f"(seeds {r[:, 0].min():.4f}-{r[:, 0].max():.4f}), std across examples {r[:, 1].mean():.4f}, "
            f"5th-95th percentile {r[:, 2].mean():.4f}-{r[:, 3].mean():.4f}"
        )


if __name__ == "__main__":
    main()
