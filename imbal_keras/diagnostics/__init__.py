"""Gradient-noise diagnostics: the mean and covariance of each strategy's mini-batch gradient at the current weights.

Whether class weights make SGD "more stochastic" than upsampling has an exact answer at any point of training:
the mean G and the covariance of the mini-batch gradient g_B under each strategy's way of forming batches. This
package measures it two ways (formulas, tolerances and measured speed in docs/diagnostics.md):

- **Exact** (`class_moments`, `predict`, `exact`): per-example gradients g_i of the model's per-example loss,
  vectorised and chunked, reduced to per-class moments (mean mu_c, second moment s_c = E[|g|^2 | c], Gram matrix
  mu_c . mu_d). A strategy's batch formation, described as data by a `BatchSampling`, then gives G, tr Cov(g_B)
  split into a within-class and a between-class term, |G|^2, the simple noise scale B_simple = tr Sigma / |G|^2
  (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training"), the distance of G to the gradient of the
  balanced risk, the bias of the self-normalised reduction and the probability that a batch holds no minority
  example, all in closed form. One set of moments serves every strategy.
- **Sampled** (`sampled`, `two_batch_sizes`): batch gradients drawn through a strategy's real `tf.data` pipeline,
  for any model; estimates of G, tr Cov, |G|^2, tr Sigma and B_simple with jackknife standard errors, and the
  two-batch-size estimator of McCandlish et al. (Appendix A).

Modules: `moments` (per-example gradients and per-class moments), `exact_mode` (batch class counts, closed forms,
`describe` from the registry), `sampled_mode` (estimators over real batches). The Keras callback that runs the
exact mode during `fit` is `imbal_keras.callbacks.GradientNoise`.

Gradients are taken with `training=False` (no dropout noise, batch-norm in inference mode: the loss of an example
then depends on that example only) and of the data loss alone (regularization terms are not part of the noise).
"""

from imbal_keras.data.batch_sampling import BatchSampling
from imbal_keras.diagnostics.exact_mode import (
    QUANTITIES,
    NoisePrediction,
    describable,
    describe,
    exact,
    noise_table,
    predict,
)
from imbal_keras.diagnostics.moments import (
    CLASS_QUANTITIES,
    DEFAULT_EXAMPLES_PER_CLASS,
    DEFAULT_MAX_PARAMETERS,
    ClassMoments,
    class_moments,
    per_example_gradients,
    subsample,
)
from imbal_keras.diagnostics.sampled_mode import NoiseEstimate, sampled, two_batch_sizes

__all__ = [
    "CLASS_QUANTITIES",
    "DEFAULT_EXAMPLES_PER_CLASS",
    "DEFAULT_MAX_PARAMETERS",
    "QUANTITIES",
    "BatchSampling",
    "ClassMoments",
    "NoiseEstimate",
    "NoisePrediction",
    "class_moments",
    "describable",
    "describe",
    "exact",
    "noise_table",
    "per_example_gradients",
    "predict",
    "sampled",
    "subsample",
    "two_batch_sizes",
]
