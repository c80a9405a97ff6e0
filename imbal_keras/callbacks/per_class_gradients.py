"""`PerClassGradients`: per-class loss contributions, gradients and update sizes of a step."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from imbal_keras.callbacks import _keras_adapter, _labels, _split, rows
from imbal_keras.callbacks.recorder import StepRecorder

__all__ = ["PerClassGradients"]


class PerClassGradients(StepRecorder):
    """Logs how much each class contributes to the loss, the gradient and the update of a step.

    The loss is split exactly: with the model's compiled loss, its reduction, `loss_weights`, sample
    weights and `class_weight=`, L_c is the loss the batch would have if only the examples of class
    c counted, with the batch's own denominator, so that sum_c L_c + L_reg = L (L_reg: regularizers
    and `add_loss` terms, 0 for most models) and sum_c grad L_c + grad L_reg = grad L.

    Per recorded step (TensorBoard tag -> DataFrame column, `/` becomes `_`):
    - `loss/total`, `loss/regularization`, `loss/class_{c}`: L, L_reg and L_c;
    - `gradients/norm/total`: ||grad L|| over all trainable weights, before the optimizer's
      clipping (and without its loss scaling);
    - `gradients/norm/applied`: the norm of the gradient the update used, after `clipnorm`,
      `global_clipnorm` or `clipvalue` (equal to the total without clipping);
    - `gradients/norm/class_{c}`: ||grad L_c||, exactly 0 when the batch has no example of c;
    - `gradients/cosine/class_{c}_vs_rest`: cosine between grad L_c and the sum of the other
      classes' gradients (for two classes both entries are the cosine between the two class
      gradients); 0 when either is zero;
    - `gradients/update_norm`: ||delta theta||, the change of the trainable weights made by the
      step;
    - `gradients/effective_step/class_{c}`: the size of class c's share of the actual update:
      ||delta theta * grad L_c / grad L|| (element-wise; coordinates with a zero gradient count as
      0). For plain SGD this is exactly learning_rate * ||grad L_c||; for momentum and adaptive
      optimizers (Adam, RMSprop, ...) it splits the update the optimizer really made, per
      coordinate, in proportion to each class's gradient there;
    - `gradients/examples/class_{c}`: examples of class c in the batch.

    Dense labels split the loss by element class: L_c is the loss restricted to the pixels (tokens)
    of class c with the full loss's denominator, and `examples` counts those elements. Multi-label
    targets split it by label: L_l is label l's binary cross-entropy term. For a model with several
    outputs the whole step's columns (`loss/total`, the gradient and update norms) are logged once
    and each observed output's class columns start with its name (`main/loss/class_1`); an output's
    L_c include its `loss_weights` factor.

    Recording a step costs a forward pass and K backward passes (K + 1 when the model has
    `model.losses` terms): Keras's own train step trains on the batch, and the callback recomputes
    the loss and gradients from the weights and state before the step, in a graph TensorFlow
    optimizes apart from the step's, so nothing it computes changes the update; steps between
    recordings run the model's own train step and cost nothing extra. The gradient of the class with
    the most examples in the batch is grad (L - L_reg) minus the others' gradients, so its round-off
    is about float32 eps times ||grad L||. Under `tf.distribute` all values are those of the global
    batch (per-class gradients are summed over replicas). Observing does not change training: the
    trained weights and the optimizer state are bit for bit those of a fit without the callback.

    Args:
      log_dir: TensorBoard directory; events go to `log_dir/train`.
      every_n_steps: record every n-th optimizer step (steps 0, n, 2n, ...).
      minority_class: the class whose cosine goes into `summary()`; class 1 by default.
      num_classes: K; inferred from the model output when omitted ((B, 1) output means K = 2).
      class_names: a name per class, in class order, used in the tags and columns instead of the class ids
        (`class_{name}`); K is their number.
      outputs: for a model with several outputs, the names of the outputs to observe (default: every output
        with labels); each output's tags and columns start with its name (`main/...`, `main_...`).
      ignore_class: for dense labels (a class per pixel or token), the label of elements that count in no class;
        by default the compiled loss's own `ignore_class`, if it has one.

    Example:
    ```python
    callback = PerClassGradients("logs/run1", every_n_steps=10)
    model.fit(ds, epochs=5, callbacks=[callback])
    rows = callback.dataframe()
    ```
    """

    needs_gradients = True
    # Every replica ends up with the same (all-reduced) values, so reading takes the first copy.
    _aggregation = tf.VariableAggregation.ONLY_FIRST_REPLICA

    def __init__(
        self,
        log_dir: str,
        *,
        every_n_steps: int = 10,
        minority_class: int = 1,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        outputs: list[str] | None = None,
        ignore_class: int | None = None,
    ):
        super().__init__(
            log_dir,
            every_n_steps=every_n_steps,
            minority_class=minority_class,
            num_classes=num_classes,
            class_names=class_names,
            outputs=outputs,
            ignore_class=ignore_class,
        )
        self._ema_every = 0

    def _tags(self) -> list[str]:
        tags = rows.output_gradient_tags(self._targets, accumulation=self._accumulation > 1)
        return tags + [rows.EMA_OVERWRITE_TAG] if self._ema_every else tags

    def _raw_width(self) -> int:
        return len(rows.output_gradient_tags(self._targets, accumulation=self._accumulation > 1))

    def _columns(self, raw: np.ndarray, steps: np.ndarray) -> np.ndarray:
        if not self._ema_every:
            return raw
        # Keras overwrites the weights after update u when (u + 1) is a multiple of the frequency.
        overwritten = (steps // self._accumulation + 1) % self._ema_every == 0
        return np.concatenate([raw, overwritten[:, None]], axis=1)

    def on_train_begin(self, logs=None):
        _keras_adapter.check_loss_scaling_supported("PerClassGradients", self.model.optimizer)
        self._ema_every = _keras_adapter.ema_overwrite_frequency(self.model.optimizer)
        # Resolved while tracing the train step: Keras builds the compiled loss on its first call.
        self._class_losses = None
        super().on_train_begin(logs)

    def _prepare(self) -> None:
        super()._prepare()
        if self._accumulation > 1:
            # Rows: each class's gradient summed over the batches of the update so far, then the total's; the last
            # column counts those batches.
            size = sum(int(np.prod(w.shape)) for w in self.model.trainable_weights)
            self._zeroed_variable("_accumulated", (self._classes() + 1, size + 1))

    def _classes(self) -> int:
        """The classes of all observed outputs together (the rows of the stacked class gradients)."""
        return sum(target.num_classes for target in self._targets)

    def record_gradients(self, step) -> None:
        """Records the quantities of a `probe.GradientStep` (called inside the train step)."""
        if self._class_losses is None:
            self._class_losses = [_split.output_loss(self.model, target) for target in self._targets]
        # Recomputed from the state before the step in a graph of their own: an op that read Keras's gradient or
        # shared its ops would change how TensorFlow's graph optimizer rewrites the update, which then differed in
        # the last bit on some CPUs.
        class_gradients = _keras_adapter.in_separate_graph(self._class_gradients)

        def row():
            before = (step.weights_before, step.state_before, step.step)
            per_class, total, losses, counts = class_gradients(
                step.x, step.y, step.sample_weight, before, step.loss_scale
            )
            shapes = [w.shape for w in step.weights]
            applied = _keras_adapter.clipped_gradient(self.model.optimizer, total, shapes)
            replica = tf.distribute.get_replica_context()
            if replica is not None and replica.num_replicas_in_sync > 1:
                reduced = replica.all_reduce(
                    tf.distribute.ReduceOp.SUM, [per_class, total, losses, counts] + [applied] * (applied is not None)
                )
                per_class, total, losses, counts = reduced[:4]
                applied = reduced[4] if applied is not None else None
            update = _flatten([w.value for w in step.weights]) - _flatten(step.weights_before)
            if self._accumulation > 1:
                return self._accumulated_row(step.step, per_class, total, update, losses, counts)
            return self._row(per_class, total, applied, update, losses, counts)

        self._record(step.step, row)

    def _row(self, per_class, total, applied, update, losses, counts, split=None) -> list[tf.Tensor]:
        """`rows.gradient_row` of each observed output, joined (`rows.joined_gradient_rows`) for several.

        `per_class` (sum K, P), the class losses after the first two entries of `losses` and `counts` (sum K,) hold
        the outputs' classes one output after the other; `split` is `(per_class, total)` as `rows.gradient_row`
        takes it, its classes stacked the same way.
        """
        if len(self._targets) == 1 and self._targets[0].name is None:
            return rows.gradient_row(per_class, total, applied, update, losses, counts, split=split)
        sizes = [target.num_classes for target in self._targets]
        parts = zip(
            tf.split(per_class, sizes),
            tf.split(losses[2:], sizes),
            tf.split(counts, sizes),
            tf.split(split[0], sizes) if split is not None else [None] * len(sizes),
            strict=True,
        )
        return rows.joined_gradient_rows(
            [
                rows.gradient_row(
                    classes,
                    total,
                    applied,
                    update,
                    tf.concat([losses[:2], class_losses], 0),
                    class_counts,
                    split=(split_classes, split[1]) if split is not None else (classes, total),
                )
                for classes, class_losses, class_counts, split_classes in parts
            ]
        )

    def _accumulated_row(self, step, per_class, total, update, losses, counts) -> list[tf.Tensor]:
        """The row of one of the k batches of an update with `gradient_accumulation_steps=k`.

        The batch's own losses, gradients, norms and cosines; `gradients/norm/applied`, the update's norm and the
        effective steps are those of the update where the optimizer applies it (the k-th batch) and 0 in the other
        batches, which do not change the weights. The update is split per class in proportion to the class
        gradients summed over the update's batches, as the optimizer averages them, and
        `gradients/accumulation/batches_in_split` says over how many batches (k, or fewer when the fit began
        inside an update whose first batches an earlier fit trained on).
        """
        applies = tf.cast(tf.equal((step + 1) % self._accumulation, 0), tf.float32)
        ones = tf.ones([self._classes() + 1, 1])
        summed = self._accumulated + tf.concat([tf.concat([per_class, total[None]], axis=0), ones], axis=1)
        self._accumulated.assign(summed * (1.0 - applies))
        split_per_class, split_total, batches = summed[:-1, :-1], summed[-1, :-1], summed[0, -1]
        shapes = [w.shape for w in self.model.trainable_weights]
        averaged = split_total / self._accumulation
        applied = _keras_adapter.clipped_gradient(self.model.optimizer, averaged, shapes)
        applied = averaged if applied is None else applied
        row = self._row(
            per_class, total, applied * applies, update, losses, counts, split=(split_per_class, split_total)
        )
        return [*row, applies[None], (batches * applies)[None]]

    def _class_gradients(self, x, y, sample_weight, before: tuple, loss_scale) -> tuple:
        """The class gradients, total gradient, losses and class counts of a batch, from the state before the step.

        Args:
          x, y, sample_weight: the batch.
          before: `(weights, state, step)`, the values of the trainable and the other variables and the optimizer
            step before the step (see `_keras_adapter.state_before_step`).
          loss_scale: the factor the optimizer scaled the loss by, or None.

        Returns:
          `(per_class, total, losses, counts)`: grad L_c flattened, (sum K, P), the observed outputs' classes one
          output after the other; grad L, (P,); L, L_reg and the L_c, (2 + sum K,); examples per class, (sum K,).
        """
        model, weights = self.model, before[0]
        with _keras_adapter.state_before_step(model, *before), tf.GradientTape(persistent=True) as tape:
            tape.watch(weights)
            y_pred, additional_losses = _keras_adapter.forward(model, x)
            data_loss = _keras_adapter.compiled_loss(model, y, y_pred, sample_weight)
            if _keras_adapter.overrides_compute_loss(model):
                # Whatever the model's own compute_loss adds to the compiled loss counts as regularization.
                loss = _keras_adapter.model_loss(model, x, y, y_pred, sample_weight)
                regularization, additional_losses = loss - data_loss, True
            else:
                regularization = _keras_adapter.regularization(model, additional_losses, data_loss.dtype)
                loss = data_loss + regularization if additional_losses else data_loss
            scaled_loss, scaled_data_loss = _scaled(loss, loss_scale), _scaled(data_loss, loss_scale)
            outputs = [_labels.select(y_pred, target) for target in self._targets]
            splits = [
                _split.split(
                    output_loss,
                    target,
                    _labels.select(y, target),
                    output,
                    _labels.select(sample_weight, target, shared=True),
                )
                for output_loss, target, output in zip(self._class_losses, self._targets, outputs, strict=True)
            ]

        def gradient(target, **kwargs) -> tf.Tensor:
            gradients = tape.gradient(target, weights, **kwargs)
            # A weight the output does not depend on has no gradient (None), which counts as 0.
            gradients = [tf.zeros(w.shape) if g is None else g for w, g in zip(weights, gradients, strict=True)]
            return _flatten(_keras_adapter.unscale_gradients(gradients, loss_scale))

        # The compiled loss sums terms that each depend on one example's (pixel's, label's) prediction only, so
        # masking d(L - L_reg)/d(output) to the terms of class c and back-propagating gives grad L_c exactly: one
        # backward pass per class. Behind a sigmoid or softmax output the source is its logits, which the
        # probabilities are a function of: Keras's cross-entropies read the logits, other losses the probabilities,
        # and the gradient with respect to the logits holds both paths once.
        sources = [
            output if _keras_adapter.logits(output) is None else _keras_adapter.logits(output) for output in outputs
        ]
        output_gradients = tape.gradient(scaled_data_loss, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        total = gradient(scaled_loss)
        per_class = []
        for source, output_gradient, output_split in zip(sources, output_gradients, splits, strict=True):
            # The output's whole data gradient: the loss's own when it is all there is (one output, no other terms),
            # else its classes' terms only (elements in no class left out).
            if not output_split.complete:
                labelled = tf.reduce_sum(output_split.membership, axis=-1, keepdims=True)
                data = gradient(source, output_gradients=output_gradient * _split.class_mask(labelled, 0, source))
            elif self._targets[0].name is None and not additional_losses:
                data = total
            else:
                data = gradient(source, output_gradients=output_gradient)
            # One backward pass per class but the one with the most terms (`rows.per_class_gradients`); a class
            # without any is always back-propagated, so its gradient is exactly 0.
            order = rows.class_order(tf.reduce_sum(output_split.membership, axis=[0, 1]))
            masks = rows.class_masks(output_split.membership, order)
            others = [
                gradient(source, output_gradients=output_gradient * _split.class_mask(masks, i, output_gradient))
                for i in range(1, masks.shape[-1])
            ]
            per_class.append(rows.per_class_gradients(data, others, order))
        class_losses = [tf.cast(output_split.losses, loss.dtype) for output_split in splits]
        losses = tf.concat([tf.stack([loss, regularization]), *class_losses], 0)
        counts = tf.concat([output_split.counts for output_split in splits], 0)
        return tf.concat(per_class, 0), total, losses, counts

    def summary(self) -> dict[str, float]:
        """Scalar summaries over the run, for the results table (see docs/callbacks.md).

        Means are over the recorded steps; the minority's cosine only over the recorded steps whose
        batch had a minority example (NaN if none had), whose share is
        `gradients_frac_steps_with_minority`.
        """
        frame = self.dataframe()
        means = {
            "gradients_mean_norm_total": "gradients_norm_total",
            "gradients_mean_norm_applied": "gradients_norm_applied",
            "gradients_mean_update_norm": "gradients_update_norm",
        }
        for target in self._targets:
            prefix = target.prefix.replace("/", "_")
            for c in target.labels:
                means[f"{prefix}gradients_mean_norm_class_{c}"] = f"{prefix}gradients_norm_class_{c}"
                means[f"{prefix}gradients_mean_effective_step_class_{c}"] = (
                    f"{prefix}gradients_effective_step_class_{c}"
                )
                means[f"{prefix}loss_mean_class_{c}"] = f"{prefix}loss_class_{c}"
        summary = {key: float(frame[column].mean()) for key, column in means.items()}
        for target in self._targets:
            prefix = target.prefix.replace("/", "_")
            minority = target.labels[self.minority_class]
            with_minority = frame[f"{prefix}gradients_examples_class_{minority}"] > 0
            cosine = frame[f"{prefix}gradients_cosine_class_{minority}_vs_rest"][with_minority]
            summary[f"{prefix}gradients_mean_cosine_minority_vs_rest"] = float(cosine.mean())
            summary[f"{prefix}gradients_frac_steps_with_minority"] = float(with_minority.mean())
        return summary


def _scaled(loss: tf.Tensor, loss_scale) -> tf.Tensor:
    """The loss times the optimizer's loss scale, as `optimizer.scale_loss` multiplies it."""
    return loss if loss_scale is None else loss * tf.cast(loss_scale, loss.dtype)


def _flatten(tensors) -> tf.Tensor:
    """The tensors as one float32 vector (vectors are not reshaped: every op counts in a small model's step)."""
    tensors = [tf.cast(t, tf.float32) for t in tensors]
    return tf.concat([t if t.shape.rank == 1 else tf.reshape(t, [-1]) for t in tensors], axis=0)
