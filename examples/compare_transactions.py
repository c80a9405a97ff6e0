"""The worked example at full size: 3 strategies x 5 seeds on 20,000 transactions, split forward in time.

python -m examples.compare_transactions --output_dir=/tmp/transactions_comparison --workers=2
"""

from __future__ import annotations

import argparse
import os
import time

import imbal_keras
from examples.transactions import make_transactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="transactions_comparison")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(os.path.abspath(args.output_dir), "transactions.csv")
    make_transactions(args.rows).to_csv(path, index=False)
    started = time.time()
    result = imbal_keras.compare(
        "examples.fraud_model:build_model",
        strategies=["none", "class_weight", "upsample"],
        seeds=args.seeds,
        output_dir=args.output_dir,
        workers=args.workers,
        dataset=f"csv:{path}",
        label_column="is_fraud",
        categorical_columns=["merchant_category", "country"],
        drop_columns=["transaction_id"],
        time_column="timestamp",
        imbalance_ratio=0,
        steps=args.steps,
        eval_every=100,
        batch_size=64,
        learning_rate=0.05,
    )
    print(f"{len(result.results)} runs in {time.time() - started:.0f} s")
    print(result.mean().round(4).to_string())


if __name__ == "__main__":
    main()
