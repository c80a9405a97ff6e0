"""Data: loaders into train / validation / test splits, long-tail profiles, share arithmetic and tf.data pipelines.

What users call is exported here: `load(config.data)` or one loader per source (`synthetic`, `from_csv`,
`from_parquet`, `from_frame`, `from_npz`, `from_python`, `from_arrays`, `from_tfds`), each returning `Data` with its
three `Split`s; for dense (mask, sequence) and multi-label targets `segmentation`, `token_sequences`,
`multilabel_tags`, `dense_from_arrays`, `dense_from_npz`, `dense_from_python` and `dense_from_tfds`. Modules:
`sources` (the loaders), `generated` (synthetic data), `tabular` (tables encoded as features), `splits` (subsampling and
splitting), `longtail` (class profiles and groups), `shares` (class-share arithmetic, no TensorFlow),
`batch_sampling` (how a strategy forms batches, as data), `pipelines` and `streaming` (the tf.data builders, which
import TensorFlow; import them by name); for dense and multi-label targets `dense_shares` (pixel frequencies,
presence, weights; no TensorFlow), `dense` (weight maps, presence resampling, patch and repeat-factor sampling;
TensorFlow), `dense_generated` (synthetic data and loaders) and `dense_tfds` (TFDS datasets with masks); for
multi-output models `multi_output` (class weights per head, resampling by one head's classes; TensorFlow).
"""

from imbal_keras.data.dense_generated import (
    dense_from_arrays,
    multilabel_tags,
    segmentation,
    token_sequences,
)
from imbal_keras.data.dense_tfds import dense_from_tfds
from imbal_keras.data.sources import (
    as_arrays,
    dense_from_npz,
    dense_from_python,
    from_arrays,
    from_csv,
    from_npz,
    from_parquet,
    from_python,
    from_tfds,
    import_function,
    is_tf_dataset,
    load,
    synthetic,
)
from imbal_keras.data.splits import Data, Split, iterative_stratification
from imbal_keras.data.tabular import Feature, from_frame

__all__ = [
    "Data",
    "Feature",
    "Split",
    "as_arrays",
    "dense_from_arrays",
    "dense_from_npz",
    "dense_from_python",
    "dense_from_tfds",
    "from_arrays",
    "from_csv",
    "from_frame",
    "from_npz",
    "from_parquet",
    "from_python",
    "from_tfds",
    "import_function",
    "is_tf_dataset",
    "iterative_stratification",
    "load",
    "multilabel_tags",
    "segmentation",
    "synthetic",
    "token_sequences",
]
