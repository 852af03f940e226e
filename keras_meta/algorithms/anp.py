"""Attentive Neural Processes."""

import copy
import math

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta import episode
from keras_meta.algorithms.cnp import CNP
from keras_meta.algorithms.cnp import gaussian_outputs
from keras_meta.checks import check_count
from keras_meta.gaussian import gaussian_kl
from keras_meta.models.seed_state import SavesSeedGenerator
from keras_meta.models.surgery import clone_with_weights

# The latent path's standard deviation, `0.1 + 0.9 * sigmoid(raw)`, as in
# the Neural Process papers.
_LATENT_MIN_STD = 0.1


@keras.saving.register_keras_serializable(package="keras_meta")
class ANP(SavesSeedGenerator, CNP):
    """Attentive Neural Process: cross-attention to the support set, and a
    global latent variable.

    Deterministic path: the encoder maps each support pair `(x, y)` to a
    value `r_i`; each query attends to the support set with multi-head
    dot-product attention, keys and queries being a learned two-layer
    embedding of the inputs `x`, so every query gets its own representation
    `r*(x)`. Latent path (when `latent_encoder` is given): the latent encoder
    maps each pair to `s_i`; their mean passes through a learned layer to
    the mean and standard deviation of a diagonal Gaussian over `z`
    (`std = 0.1 + 0.9 * sigmoid(raw)`). The decoder maps `[x, r*(x), z]` to
    a Gaussian predictive distribution with a variance floor, as `CNP`.

    Training maximizes the paper's evidence lower bound: `z` is drawn
    (reparameterized) from the posterior given the targets (the support
    *and* query pairs; the query pairs alone with
    `queries_include_support`), the compiled loss scores the queries, and `KL(posterior || prior
    given the support set)` divided by the number of queries (the compiled
    loss is a mean over queries) is added. `fit()` passes the query labels
    to the latent path for this; they never reach the deterministic path
    or any prediction. Evaluation, `predict()` and `adapt()` use the prior's
    mean for `z`, so they are deterministic and the adapted model predicts
    exactly as the learner.

    Without `latent_encoder` this is the deterministic attentive model.
    Padded support examples (`support_weights` 0) are masked out of the
    attention and the latent mean.

    Args:
        model: The decoder, a built `keras.Model` taking `x_dim + r_dim +
            latent_dim` features and returning `2 * d` values.
        encoder: A built `keras.Model` mapping a support pair (`x_dim + d`
            features) to a value of `r_dim` features.
        latent_encoder: Optional built `keras.Model` mapping a support pair
            to features that are averaged for the latent variable.
        latent_dim: Int, the size of `z` (needed with `latent_encoder`).
        num_heads: Int, attention heads; `r_dim` must be divisible by it.
            Defaults to `8`.
        min_std: Float in (0, 1), the predictive standard deviation's floor.
            Defaults to `0.1`.
        queries_include_support: Bool. Whether the training episodes' query
            sets already hold their support points (as
            `keras_meta.data.random_context` makes them, the papers' way):
            the latent posterior then encodes the query pairs alone instead
            of the support and query pairs, so no context point counts
            twice. Defaults to `False`.
        seed: Optional int, for the attention and latent weights' initial
            values and the latent samples in training.
        **kwargs: Passed to `keras_meta.MetaModel`.

    Example:

    ```python
    encoder, latent_encoder, decoder = (
        keras_meta.models.attentive_neural_process_networks(x_dim=1, y_dim=1))
    anp = keras_meta.ANP(decoder, encoder=encoder,
                         latent_encoder=latent_encoder, latent_dim=128)
    anp.compile(optimizer=keras.optimizers.Adam(1e-4),
                loss=keras_meta.losses.GaussianNegativeLogLikelihood())
    ```

    Reference:
        - [Kim et al., 2019](https://arxiv.org/abs/1901.05761)
    """

    def __init__(self, model, *, encoder, latent_encoder=None, latent_dim=None,
                 num_heads=8, min_std=0.1, queries_include_support=False,
                 seed=None, **kwargs):
        check_count("num_heads", num_heads, 1)
        if latent_encoder is None:
            if latent_dim not in (None, 0):
                raise ValueError(
                    "`latent_dim` sizes the latent path, which needs a "
                    "`latent_encoder`. Received latent_dim="
                    f"{latent_dim!r} and no latent_encoder.")
            latent_dim = 0
        else:
            if not isinstance(latent_encoder, keras.Model) or (
                    not latent_encoder.built):
                raise ValueError(
                    "`latent_encoder` must be a built `keras.Model` mapping "
                    "a support pair (x and y concatenated) to features. "
                    f"Received: {latent_encoder!r}.")
            check_count("latent_dim", latent_dim, 1)
        # Read by `_check_dimensions`, which the base class's constructor
        # calls before this one can set attributes the Keras way.
        object.__setattr__(self, "_latent_dim", int(latent_dim))
        super().__init__(model, encoder=encoder, min_std=min_std, **kwargs)
        r_dim = self.representation_dim
        if r_dim % num_heads:
            raise ValueError(
                f"The encoder's {r_dim} output features must split evenly "
                f"into `num_heads`={num_heads} heads.")
        self.latent_encoder = latent_encoder
        self.latent_dim = self._latent_dim
        self.num_heads = int(num_heads)
        self.queries_include_support = bool(queries_include_support)
        self.seed = seed
        if latent_encoder is not None:
            pair_dim = latent_encoder.input_shape[-1]
            if pair_dim != self.input_dim + self.target_dim:
                raise ValueError(
                    f"The latent encoder takes {pair_dim} features; a "
                    f"support pair has {self.input_dim + self.target_dim} "
                    f"(x_dim {self.input_dim} + d {self.target_dim}).")
            self.prepare_normalization(latent_encoder)
        self.seed_generator = keras.random.SeedGenerator(seed)

        def weight(name, shape, zeros=False, offset=0):
            initializer = ("zeros" if zeros else keras.initializers.
                           GlorotUniform(None if seed is None
                                         else seed + offset))
            return self.add_weight(shape=shape, initializer=initializer,
                                   name=name)

        x_dim = self.input_dim
        # Keys and queries: a shared two-layer embedding of x, then the
        # heads' projections; values: the encoder's outputs, projected.
        self.attention_weights = [
            weight("embedding_kernel_1", (x_dim, r_dim), offset=1),
            weight("embedding_bias_1", (r_dim,), zeros=True),
            weight("embedding_kernel_2", (r_dim, r_dim), offset=2),
            weight("embedding_bias_2", (r_dim,), zeros=True),
            weight("query_kernel", (r_dim, r_dim), offset=3),
            weight("key_kernel", (r_dim, r_dim), offset=4),
            weight("value_kernel", (r_dim, r_dim), offset=5),
            weight("output_kernel", (r_dim, r_dim), offset=6),
            weight("output_bias", (r_dim,), zeros=True),
        ]
        self.latent_weights = []
        if latent_encoder is not None:
            hidden = latent_encoder.output_shape[-1]
            self.latent_weights = [
                weight("latent_kernel_1", (hidden, hidden), offset=7),
                weight("latent_bias_1", (hidden,), zeros=True),
                weight("latent_kernel_2", (hidden, 2 * self.latent_dim),
                       offset=8),
                weight("latent_bias_2", (2 * self.latent_dim,), zeros=True),
            ]

    def _check_dimensions(self, encoder, model):
        # The decoder takes x, r* and z.
        self.representation_dim = encoder.output_shape[-1]
        self.input_dim = (model.input_shape[-1] - self.representation_dim
                          - self._latent_dim)
        if self.input_dim < 1 or encoder.input_shape[-1] != (
                self.input_dim + self.target_dim):
            raise ValueError(
                f"The encoder takes {encoder.input_shape[-1]} features and "
                f"returns {self.representation_dim}; the decoder takes "
                f"{model.input_shape[-1]} and returns {2 * self.target_dim}. "
                "For "
                "x_dim-dimensional inputs and d-dimensional targets the "
                "encoder takes x_dim + d features and the decoder x_dim + "
                "r_dim + latent_dim (see "
                "`keras_meta.models.attentive_neural_process_networks`).")

    # ------------------------------------------------------------------

    def meta_parameters(self):
        params = super().meta_parameters()
        params["attention"] = [backend.read_value(v)
                               for v in self.attention_weights]
        if self.latent_encoder is not None:
            params["latent_head"] = [backend.read_value(v)
                                     for v in self.latent_weights]
            params["latent_encoder_weights"] = [
                backend.read_value(v)
                for v in self.latent_encoder.trainable_variables]
            params["latent_encoder_state"] = [
                backend.read_value(v)
                for v in self.latent_encoder.non_trainable_variables]
        return params

    def uses_query_labels(self):
        """With a latent path, training reads the query labels: the
        latent posterior encodes the support and query sets together."""
        return self.latent_encoder is not None

    def per_task_parameters(self, inputs, training):
        if not training or self.latent_encoder is None:
            return None
        num_tasks = ops.shape(inputs[episode.SUPPORT_INPUTS])[0]
        values = {"latent_noise": keras.random.normal(
            (num_tasks, self.latent_dim), seed=self.seed_generator,
            dtype=self.model.compute_dtype)}
        if episode.QUERY_LABELS in inputs:
            values[episode.QUERY_LABELS] = ops.cast(
                inputs[episode.QUERY_LABELS], self.model.compute_dtype)
        return values

    def task_output_keys(self, training):
        if training and self.latent_encoder is not None:
            return ("predictions", "auxiliary_loss")
        return None

    # ------------------------------------------------------------------

    def embed(self, attention, inputs):
        """The keys' and queries' embedding of inputs `x`."""
        kernel_1, bias_1, kernel_2, bias_2 = attention[:4]
        hidden = ops.relu(ops.matmul(inputs, kernel_1) + bias_1)
        return ops.matmul(hidden, kernel_2) + bias_2

    def _latent_features(self, params, pairs, training):
        features, _ = self.run_model(
            params["latent_encoder_weights"], params["latent_encoder_state"],
            pairs, training, model=self.latent_encoder)
        return features

    def _latent_distribution(self, params, feature_sum, count):
        kernel_1, bias_1, kernel_2, bias_2 = params["latent_head"]
        pooled = feature_sum / count
        hidden = ops.relu(ops.matmul(pooled, kernel_1) + bias_1)
        raw = ops.matmul(hidden, kernel_2) + bias_2
        mean = raw[:self.latent_dim]
        std = _LATENT_MIN_STD + (1.0 - _LATENT_MIN_STD) * ops.sigmoid(
            raw[self.latent_dim:])
        return mean, std

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        pairs = self._pairs(support_inputs, support_labels)
        values, _ = self.run_model(params["encoder_weights"],
                                   params["encoder_state"], pairs, training,
                                   model=self.encoder)
        attention = params["attention"]
        keys = ops.matmul(self.embed(attention, support_inputs), attention[5])
        values = ops.matmul(values, attention[6])
        if support_weights is None:
            mask = ops.ones((ops.shape(support_inputs)[0],), keys.dtype)
        else:
            mask = ops.cast(support_weights, keys.dtype)
        state = {"keys": keys, "values": values, "mask": mask}
        if self.latent_encoder is not None:
            features = self._latent_features(params, pairs, training)
            state["latent_sum"] = ops.sum(features * mask[:, None], axis=0)
            state["latent_count"] = ops.maximum(ops.sum(mask), 1.0)
        return state

    def attend(self, attention, task_state, query_inputs):
        """`r*` for each query: multi-head attention to the support set."""
        heads, r_dim = self.num_heads, self.representation_dim
        depth = r_dim // heads
        queries = ops.matmul(self.embed(attention, query_inputs),
                             attention[4])
        num_query = ops.shape(queries)[0]
        num_support = ops.shape(task_state["keys"])[0]
        queries = ops.reshape(queries, (num_query, heads, depth))
        keys = ops.reshape(task_state["keys"], (num_support, heads, depth))
        values = ops.reshape(task_state["values"],
                             (num_support, heads, depth))
        scores = ops.einsum("qhd,shd->hqs", queries, keys) / math.sqrt(depth)
        # Padded support examples get no weight.
        scores = scores + (1.0 - task_state["mask"]) * -1e9
        weights = ops.softmax(scores, axis=-1)
        attended = ops.einsum("hqs,shd->qhd", weights, values)
        attended = ops.reshape(attended, (num_query, r_dim))
        return ops.matmul(attended, attention[7]) + attention[8]

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        features = [query_inputs,
                    ops.cast(self.attend(params["attention"], task_state,
                                         query_inputs), query_inputs.dtype)]
        auxiliary = None
        if self.latent_encoder is not None:
            prior_mean, prior_std = self._latent_distribution(
                params, task_state["latent_sum"], task_state["latent_count"])
            z = prior_mean
            if training:
                mean, std = prior_mean, prior_std
                if episode.QUERY_LABELS in params:
                    query_features = self._latent_features(
                        params, self._pairs(
                            query_inputs, params[episode.QUERY_LABELS]),
                        training)
                    total = ops.sum(query_features, axis=0)
                    count = ops.cast(ops.shape(query_features)[0],
                                     query_features.dtype)
                    if not self.queries_include_support:
                        # The targets are the support and query sets.
                        total = total + task_state["latent_sum"]
                        count = count + task_state["latent_count"]
                    mean, std = self._latent_distribution(params, total,
                                                          count)
                z = mean + std * ops.cast(params["latent_noise"], std.dtype)
                auxiliary = gaussian_kl(
                    mean, ops.log(std), prior_mean, ops.log(prior_std)) / (
                    ops.cast(ops.shape(query_inputs)[0], mean.dtype))
            features.append(ops.broadcast_to(
                ops.cast(z, query_inputs.dtype)[None],
                (ops.shape(query_inputs)[0], self.latent_dim)))
        raw, _ = self.run_model(
            params["weights"], params["state"],
            ops.concatenate(features, axis=-1), training)
        predictions = self.gaussian(raw)
        if auxiliary is None:
            return predictions
        return {"predictions": predictions,
                "auxiliary_loss": ops.cast(auxiliary, self.variable_dtype)}

    # ------------------------------------------------------------------

    def build_adapted_model(self, task_state, support_inputs):
        """A stock Keras model mapping queries to `[mean, std]`.

        The attention is written with `Dense` layers whose kernels hold the
        support set's keys and values; the prior mean of `z` is the bias of
        a `Dense` layer with a zero kernel.
        """
        attention = [ops.convert_to_numpy(v) for v in self.attention_weights]
        keys = ops.convert_to_numpy(task_state["keys"])
        values = ops.convert_to_numpy(task_state["values"])
        heads, r_dim = self.num_heads, self.representation_dim
        depth = r_dim // heads
        num_support = keys.shape[0]
        inputs = keras.Input(shape=(self.input_dim,))

        def dense(units, kernel, bias=None, activation=None, name=None):
            layer = keras.layers.Dense(
                units, use_bias=bias is not None, activation=activation,
                trainable=False, name=name)
            return layer, [kernel] + ([] if bias is None else [bias])

        layers = []

        def apply(layer_and_weights, tensor):
            layer, weights = layer_and_weights
            output = layer(tensor)
            layers.append((layer, weights))
            return output

        embedded = apply(dense(r_dim, attention[0], attention[1], "relu",
                               "embedding_1"), inputs)
        embedded = apply(dense(r_dim, attention[2], attention[3],
                               name="embedding_2"), embedded)
        heads_out = []
        for h in range(heads):
            columns = slice(h * depth, (h + 1) * depth)
            query = apply(dense(depth, attention[4][:, columns],
                                name=f"query_{h}"), embedded)
            scores = apply(dense(
                num_support, keys[:, columns].T / math.sqrt(depth),
                name=f"scores_{h}"), query)
            weights = keras.layers.Softmax(name=f"attention_{h}")(scores)
            heads_out.append(apply(dense(depth, values[:, columns],
                                         name=f"values_{h}"), weights))
        attended = (keras.layers.Concatenate(name="heads")(heads_out)
                    if heads > 1 else heads_out[0])
        representation = apply(dense(r_dim, attention[7], attention[8],
                                     name="representation"), attended)
        features = [inputs, representation]
        if self.latent_encoder is not None:
            latent = [ops.convert_to_numpy(v) for v in self.latent_weights]
            head = {"latent_head": [ops.convert_to_tensor(v)
                                    for v in latent]}
            mean, _ = self._latent_distribution(
                head, ops.convert_to_tensor(task_state["latent_sum"]),
                ops.convert_to_tensor(task_state["latent_count"]))
            features.append(apply(dense(
                self.latent_dim,
                np.zeros((self.input_dim, self.latent_dim), "float32"),
                ops.convert_to_numpy(mean), name="latent"), inputs))
        decoder = clone_with_weights(
            self.model, [ops.convert_to_tensor(v)
                         for v in self.model.trainable_variables])
        raw = decoder(keras.layers.Concatenate(axis=-1)(features))
        outputs = gaussian_outputs(raw, self.target_dim, self.min_std)
        adapted = keras.Model(inputs, outputs,
                              name=f"{self.model.name}_adapted")
        for layer, weights in layers:
            layer.set_weights([np.asarray(w, "float32") for w in weights])
        return adapted

    def get_config(self):
        config = super().get_config()
        config.update({
            "latent_encoder": (
                None if self.latent_encoder is None
                else keras.saving.serialize_keras_object(
                    self.latent_encoder)),
            "latent_dim": self.latent_dim or None,
            "num_heads": self.num_heads,
            "queries_include_support": self.queries_include_support,
            "seed": self.seed,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        if config.get("latent_encoder") is not None:
            config["latent_encoder"] = keras.saving.deserialize_keras_object(
                config["latent_encoder"])
        return super().from_config(config)
