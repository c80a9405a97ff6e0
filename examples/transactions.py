"""A card-transactions table as real ones come: categorical text columns, missing values, an ID and a timestamp.

    python -m examples.transactions transactions.csv 20000   # writes the table

Fraud (about 2% of rows) is more likely for large amounts, young cards, night hours, foreign countries and some
merchant categories; the rest is noise. Values go missing the way they do in practice: `card_age_days` for new
customers' records, `merchant_category` for some terminals, `amount` rarely.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

MERCHANT_CATEGORIES = ("grocery", "fuel", "travel", "electronics", "restaurants", "gaming", "pharmacy", "fashion")
COUNTRIES = ("DE", "FR", "NL", "US", "BR")


def make_transactions(num_rows: int = 20_000, *, seed: int = 0) -> pd.DataFrame:
    """The table, deterministic by seed, ordered by time (one transaction a minute from 2024-01-01)."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(mean=3.5, sigma=1.0, size=num_rows)
    category = rng.choice(MERCHANT_CATEGORIES, size=num_rows, p=[0.3, 0.15, 0.05, 0.08, 0.2, 0.04, 0.1, 0.08])
    country = rng.choice(COUNTRIES, size=num_rows, p=[0.6, 0.15, 0.15, 0.07, 0.03])
    card_age = rng.gamma(shape=2.0, scale=400.0, size=num_rows)
    hour = rng.integers(0, 24, size=num_rows)
    risky = pd.Series(category).map({"electronics": 1.2, "gaming": 1.5, "travel": 0.8}).fillna(0.0).to_numpy()
    logit = (
        -5.1
        + 0.9 * (np.log(amount) - 3.5)
        + risky
        + 1.0 * np.isin(country, ("US", "BR"))
        + 1.2 * (card_age < 90)
        + 0.8 * ((hour < 5) | (hour > 22))
    )
    fraud = rng.random(num_rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "transaction_id": [f"tx{i:07d}" for i in range(num_rows)],
            "timestamp": pd.date_range("2024-01-01", periods=num_rows, freq="min").strftime("%Y-%m-%d %H:%M"),
            "amount": amount.round(2),
            "merchant_category": category,
            "country": country,
            "card_age_days": card_age.round(),
            "hour": hour,
            "is_fraud": fraud.astype(int),
        }
    )
    frame.loc[rng.random(num_rows) < 0.15, "card_age_days"] = np.nan
    frame.loc[rng.random(num_rows) < 0.05, "merchant_category"] = None
    frame.loc[rng.random(num_rows) < 0.01, "amount"] = np.nan
    return frame


if __name__ == "__main__":
    path, rows = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    make_transactions(rows).to_csv(path, index=False)
    print(f"wrote {path}: {rows} rows")
