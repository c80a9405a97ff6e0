"""Data: loaders into train / validation / test splits, long-tail profiles, share arithmetic and tf.data pipelines.

What users call is exported here: `load(config.data)` or one loader per source (`synthetic`, `from_csv`,
`from_parquet`, `from_frame`, `from_npz`, `from_python`, `from_arrays`, `from_tfds`), each returning `Data` with its
three `Split`s. Modules: `sources` (the loaders), `generated` (synthetic data), `tabular` (tables encoded as
features), `splits` (subsampling and splitting), `longtail` (class profiles and groups), `shares` (class-share
arithmetic, no TensorFlow), `batch_sampling` (how a strategy forms batches, as data), `pipelines` and `streaming`
(the tf.data builders, which import TensorFlow; import them by name).
"""

from imbal_keras.data.sources import (
    as_arrays,
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
from imbal_keras.data.splits import Data, Split
from imbal_keras.data.tabular import Feature, from_frame

__all__ = [
    "Data",
    "Feature",
    "Split",
    "as_arrays",
    "from_arrays",
    "from_csv",
    "from_frame",
    "from_npz",
    "from_parquet",
    "from_python",
    "from_tfds",
    "import_function",
    "is_tf_dataset",
    "load",
    "synthetic",
]
