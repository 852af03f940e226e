"""Latent Embedding Optimization."""

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta import episode
from keras_meta import inner
from keras_meta.algorithms.heads import ABSENT_CLASS_LOGIT
from keras_meta.algorithms.heads import mask_absent_classes
from keras_meta.algorithms.heads import support_classes
from keras_meta.algorithms.heads import with_linear_head
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.checks import check_count
from keras_meta.checks import positive_number
from keras_meta.models.seed_state import SavesSeedGenerator


def _dense(units, activation=None, name=None):
    return keras.layers.Dense(units, activation=activation, name=name)


def _log_std(raw):
    """Log standard deviation `log(max(exp(raw) - 1, 1e-10))`.

    The paper's parametrization: the standard deviation starts near 0 for
    outputs near 0, so samples start close to the means and the noise grows
    only as far as the KL term asks.
    """
    raw = ops.minimum(raw, 10.0)
    return ops.log(ops.maximum(ops.exp(raw) - 1.0, 1e-10))


@keras.saving.register_keras_serializable(package="keras_meta")
class LEO(SavesSeedGenerator, MetaModel):
    """Latent Embedding Optimization: adapt a low-dimensional code.

    On top of features from the wrapped model (any Keras feature extractor,
    trainable or frozen, or an identity on precomputed embeddings),
    flattened and scaled to unit norm:

    1. An encoder maps each support feature to a code; a relation network
       reads every pair of codes, and averaging its outputs over the pairs
       whose first member is in class `k` gives the mean and log standard
       deviation of class `k`'s latent distribution. Training samples a
       latent `z_k` from it; evaluation takes the mean.
    2. A decoder maps `z_k` to the mean and log standard deviation of class
       `k`'s classifier weights `w_k` (sampled in training), and the
       logits are `features . w_k`.
    3. The inner loop takes `num_latent_steps` gradient steps on the latents
       (support loss through the decoder, whose weights are sampled afresh
       at every step in training), then `num_finetune_steps` steps on the
       decoded weights themselves. Both step sizes are meta-learned per
       dimension (one rate per latent dimension, one per feature).

    The training loss adds, as in the paper, `kl_weight` times the KL
    divergence of the latent distributions from `N(0, I)` and
    `encoder_penalty_weight` times `(stop_gradient(z') - z)^2` (keeping the
    encoder's codes near the adapted ones), both as means over classes and
    latent dimensions, `orthogonality_weight` times the squared deviation
    of the decoder's row correlations from the identity and `l2_weight`
    times the L2 loss (half the sum of squares) of the encoder, relation
    network and decoder weights. The meta-gradient is second order through
    both inner loops. The paper also clips gradients; pass `clipvalue=` or
    `clipnorm=` to the Keras optimizer for that.

    Args:
        model: A built `keras.Model` mapping inputs to features
            `[batch, dims]` (or any shape, flattened). It may be frozen
            (`model.trainable = False`).
        num_ways: Int, the largest number of classes per episode (see
            `keras_meta.ProtoNet`).
        latent_dim: Int, size of each class's code. Defaults to `64`.
        num_latent_steps: Int, inner steps on the latents. Defaults to `5`.
        num_finetune_steps: Int, inner steps on the decoded weights.
            Defaults to `5`.
        inner_learning_rate: Float, initial latent step size. Defaults to
            `1.0`.
        finetune_learning_rate: Float, initial weight step size. Defaults
            to `0.001`.
        kl_weight: Float. Defaults to `0.001`.
        encoder_penalty_weight: Float. Defaults to `1e-9`.
        orthogonality_weight: Float. Defaults to `0.001`.
        l2_weight: Float. Defaults to `0.0`.
        dropout_rate: Float in `[0, 1)`, dropout on the (unit-norm)
            features of support and query examples in training, as the
            paper applies to its embeddings. Defaults to `0.0`.
        seed: Optional int for the latent, weight and dropout sampling.
        batch_norm, inner_loss: See `keras_meta.MetaModel`.

    Reference:
        - [Rusu et al., 2019](https://arxiv.org/abs/1807.05960)
    """

    requires_trainable_model = False

    def __init__(self, model, *, num_ways, latent_dim=64, num_latent_steps=5,
                 num_finetune_steps=5, inner_learning_rate=1.0,
                 finetune_learning_rate=0.001, kl_weight=0.001,
                 encoder_penalty_weight=1e-9, orthogonality_weight=0.001,
                 l2_weight=0.0, dropout_rate=0.0, seed=None, **kwargs):
        super().__init__(model, **kwargs)
        check_count("num_ways", num_ways)
        check_count("latent_dim", latent_dim)
        check_count("num_latent_steps", num_latent_steps, 0)
        check_count("num_finetune_steps", num_finetune_steps, 0)
        self.num_ways = num_ways
        self.latent_dim = latent_dim
        self.num_latent_steps = num_latent_steps
        self.num_finetune_steps = num_finetune_steps
        self.inner_learning_rate = positive_number(
            "inner_learning_rate", inner_learning_rate)
        self.finetune_learning_rate = positive_number(
            "finetune_learning_rate", finetune_learning_rate)
        for name, value in (("kl_weight", kl_weight),
                            ("encoder_penalty_weight", encoder_penalty_weight),
                            ("orthogonality_weight", orthogonality_weight),
                            ("l2_weight", l2_weight)):
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or value < 0:
                raise ValueError(
                    f"`{name}` must be a number >= 0. Received: "
                    f"{name}={value!r}.")
        self.kl_weight = float(kl_weight)
        self.encoder_penalty_weight = float(encoder_penalty_weight)
        self.orthogonality_weight = float(orthogonality_weight)
        self.l2_weight = float(l2_weight)
        if isinstance(dropout_rate, bool) or not isinstance(
                dropout_rate, (int, float)) or not 0 <= dropout_rate < 1:
            raise ValueError(
                "`dropout_rate` must be a number in [0, 1). Received: "
                f"dropout_rate={dropout_rate!r}.")
        self.dropout_rate = float(dropout_rate)
        self.seed = seed

        feature_shape = model.compute_output_spec(
            keras.KerasTensor(model.input_shape)).shape[1:]
        self.feature_dim = 1
        for size in feature_shape:
            self.feature_dim *= size
        self.encoder = _dense(latent_dim, name="encoder")
        self.encoder.build((None, self.feature_dim))
        self.relation = keras.Sequential([
            keras.Input((2 * latent_dim,)),
            _dense(2 * latent_dim, "relu"),
            _dense(2 * latent_dim, "relu"),
            _dense(2 * latent_dim),
        ], name="relation")
        self.decoder = _dense(2 * self.feature_dim, name="decoder")
        self.decoder.build((None, latent_dim))
        self.latent_learning_rate = self.add_weight(
            shape=(latent_dim,), name="latent_learning_rate",
            initializer=keras.initializers.Constant(inner_learning_rate))
        self.weight_learning_rate = self.add_weight(
            shape=(self.feature_dim,), name="weight_learning_rate",
            initializer=keras.initializers.Constant(finetune_learning_rate))
        self.seed_generator = keras.random.SeedGenerator(seed)

    # ------------------------------------------------------------------

    def meta_parameters(self):
        params = super().meta_parameters()
        for name in ("encoder", "relation", "decoder"):
            params[name] = [backend.read_value(v)
                            for v in getattr(self, name).trainable_variables]
        params["latent_learning_rate"] = backend.read_value(
            self.latent_learning_rate)
        params["weight_learning_rate"] = backend.read_value(
            self.weight_learning_rate)
        return params

    def features(self, params, inputs, training, support_inputs=None):
        """Flattened features, scaled to unit norm.

        The unit norm makes the inner step sizes independent of the
        feature extractor's scale (an unnormalized Conv-4 makes the first
        latent steps diverge); the paper's precomputed embeddings play the
        same role.
        """
        if support_inputs is None:
            outputs, _ = self.run_model(
                params["weights"], params["state"], inputs, training)
        else:
            outputs, _ = self.run_query(
                params["weights"], params["state"], inputs, training,
                support_inputs)
        outputs = ops.reshape(outputs, (ops.shape(outputs)[0], -1))
        outputs = outputs / ops.sqrt(ops.maximum(
            ops.sum(ops.square(outputs), axis=-1, keepdims=True), 1e-12))
        key = "support_dropout" if support_inputs is None else (
            "query_dropout")
        if training and key in params:
            outputs = outputs * ops.cast(params[key], outputs.dtype)
        return outputs

    def latent_distribution(self, params, features, labels,
                            support_weights=None):
        """Per-class latent means and log standard deviations."""
        codes, _ = self.encoder.stateless_call(params["encoder"], [],
                                               features)
        n = ops.shape(codes)[0]
        pairs = ops.concatenate([
            ops.broadcast_to(codes[:, None], (n, n, self.latent_dim)),
            ops.broadcast_to(codes[None], (n, n, self.latent_dim)),
        ], axis=-1)
        relations, _ = self.relation.stateless_call(
            params["relation"], [], ops.reshape(pairs, (-1, 2 * self.latent_dim)))
        relations = ops.reshape(relations, (n, n, 2 * self.latent_dim))
        one_hot = ops.one_hot(ops.cast(labels, "int32"), self.num_ways,
                              dtype=relations.dtype)
        if support_weights is None:
            mask = ops.ones((n,), dtype=relations.dtype)
        else:
            mask = ops.cast(support_weights, relations.dtype)
        # Mean over partners m, then over the class's own examples n.
        per_example = ops.sum(relations * mask[None, :, None], axis=1) / (
            ops.maximum(ops.sum(mask), 1.0))
        one_hot = one_hot * mask[:, None]
        per_class = ops.matmul(ops.transpose(one_hot), per_example) / (
            ops.maximum(ops.sum(one_hot, axis=0), 1.0)[:, None])
        return (per_class[:, :self.latent_dim],
                _log_std(per_class[:, self.latent_dim:]))

    def decode(self, params, latents, noise=None):
        """Classifier weights `[num_ways, feature_dim]` for the latents."""
        decoded, _ = self.decoder.stateless_call(params["decoder"], [],
                                                 latents)
        mean = decoded[:, :self.feature_dim]
        if noise is None:
            return mean
        log_std = _log_std(decoded[:, self.feature_dim:])
        return mean + ops.exp(log_std) * ops.cast(noise, mean.dtype)

    def _logits(self, features, classifier, present):
        return mask_absent_classes(ops.matmul(features, ops.transpose(
            ops.cast(classifier, features.dtype))), present)

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        features = self.features(params, support_inputs, training)
        _, present = support_classes(support_labels, self.num_ways,
                                     features.dtype, support_weights)
        mean, log_std = self.latent_distribution(
            params, features, support_labels, support_weights)
        latents = mean
        weight_noise = params.get("weight_noise")
        if "latent_noise" in params:
            latents = mean + ops.exp(log_std) * ops.cast(
                params["latent_noise"], mean.dtype)
        loss_fn = self.inner_loss_fn()

        def noise_at(step):
            return None if weight_noise is None else weight_noise[step]

        def latent_objective(values, step):
            # The state is the step: each step decodes with its own noise.
            classifier = self.decode(params, values[0], noise_at(step))
            return self.support_loss(
                support_labels, self._logits(features, classifier, present),
                loss_fn, support_weights), step + 1

        (adapted,), _ = inner.gradient_descent(
            latent_objective, [latents], 0,
            learning_rate=params["latent_learning_rate"],
            num_steps=self.num_latent_steps,
        )

        def weight_objective(values, state):
            return self.support_loss(
                support_labels, self._logits(features, values[0], present),
                loss_fn, support_weights), state

        (classifier,), _ = inner.gradient_descent(
            weight_objective,
            [self.decode(params, adapted, noise_at(self.num_latent_steps))],
            None, learning_rate=params["weight_learning_rate"],
            num_steps=self.num_finetune_steps,
        )
        return {"classifier": classifier, "mean": mean, "log_std": log_std,
                "latents": latents, "adapted_latents": adapted,
                "present": present}

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        features = self.features(params, query_inputs, training,
                                 support_inputs)
        predictions = self._logits(features, task_state["classifier"],
                                   task_state["present"])
        if not training:
            return predictions
        mean, log_std = task_state["mean"], task_state["log_std"]
        # Means over classes and latent dimensions, as in the paper.
        kl = ops.mean(
            0.5 * (ops.square(mean) + ops.exp(2.0 * log_std) - 1.0)
            - log_std)
        penalty = ops.mean(ops.square(
            ops.stop_gradient(task_state["adapted_latents"])
            - task_state["latents"]))
        auxiliary = (self.kl_weight * kl
                     + self.encoder_penalty_weight * penalty
                     + self.orthogonality_weight
                     * self.orthogonality_penalty(params))
        if self.l2_weight:
            auxiliary = auxiliary + self.l2_weight * 0.5 * sum(
                ops.sum(ops.square(v)) for name in
                ("encoder", "relation", "decoder") for v in params[name])
        return {"predictions": predictions,
                "auxiliary_loss": ops.cast(auxiliary, self.variable_dtype)}

    def orthogonality_penalty(self, params):
        """Mean squared deviation of the decoder's row correlations from I."""
        kernel = params["decoder"][0]
        rows = kernel / ops.sqrt(ops.maximum(
            ops.sum(ops.square(kernel), axis=-1, keepdims=True), 1e-24))
        correlation = ops.matmul(rows, ops.transpose(rows))
        return ops.mean(ops.square(
            correlation - ops.eye(self.latent_dim, dtype=kernel.dtype)))

    def task_output_keys(self, training):
        return ("predictions", "auxiliary_loss") if training else None

    def per_task_parameters(self, inputs, training):
        if not training:
            return None
        # Sampling noise for every task, drawn once per step: the latents',
        # the decoded weights' at each latent step and after the last, and
        # the dropout masks.
        num_tasks = ops.shape(inputs[episode.SUPPORT_INPUTS])[0]
        dtype = self.variable_dtype
        values = {
            "latent_noise": keras.random.normal(
                (num_tasks, self.num_ways, self.latent_dim),
                seed=self.seed_generator, dtype=dtype),
            "weight_noise": keras.random.normal(
                (num_tasks, self.num_latent_steps + 1, self.num_ways,
                 self.feature_dim), seed=self.seed_generator, dtype=dtype),
        }
        if self.dropout_rate:
            keep = 1.0 - self.dropout_rate
            for key, examples in (("support_dropout", episode.SUPPORT_INPUTS),
                                  ("query_dropout", episode.QUERY_INPUTS)):
                shape = tuple(ops.shape(inputs[examples])[:2]) + (
                    self.feature_dim,)
                kept = keras.random.uniform(
                    shape, seed=self.seed_generator, dtype=dtype) < keep
                values[key] = ops.cast(kept, dtype) / keep
        return values

    def num_outputs(self, example_shape, dtype):
        return self.num_ways

    def build_adapted_model(self, task_state, support_inputs):
        weights = [ops.convert_to_tensor(v)
                   for v in self.model.trainable_variables]
        classifier = ops.convert_to_numpy(task_state["classifier"])
        present = ops.convert_to_numpy(task_state["present"])
        return with_linear_head(
            self.copy_model(weights, support_inputs),
            support_inputs.shape[1:], classifier.T * present,
            np.where(present > 0, 0.0, ABSENT_CLASS_LOGIT), normalize=True,
            name=f"{self.model.name}_adapted",
        )

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_ways": self.num_ways,
            "latent_dim": self.latent_dim,
            "num_latent_steps": self.num_latent_steps,
            "num_finetune_steps": self.num_finetune_steps,
            "inner_learning_rate": self.inner_learning_rate,
            "finetune_learning_rate": self.finetune_learning_rate,
            "kl_weight": self.kl_weight,
            "encoder_penalty_weight": self.encoder_penalty_weight,
            "orthogonality_weight": self.orthogonality_weight,
            "l2_weight": self.l2_weight,
            "dropout_rate": self.dropout_rate,
            "seed": self.seed,
        })
        return config
