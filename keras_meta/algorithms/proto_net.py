"""Prototypical Networks."""

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta.algorithms.heads import ABSENT_CLASS_LOGIT
from keras_meta.algorithms.heads import mask_absent_classes
from keras_meta.algorithms.heads import support_classes
from keras_meta.algorithms.heads import with_linear_head
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.checks import check_count
from keras_meta.checks import positive_number
from keras_meta.inner.descent import gradient_descent
from keras_meta.losses import weighted_mean
from keras_meta.models.views import AffineViews
from keras_meta.models.views import ViewMean
from keras_meta.models.views import apply_views
from keras_meta.models.views import check_views
from keras_meta.models.views import mean_over_views

DISTANCES = ("squared_euclidean", "cosine")


def _retraced(name, check, doc):
    """A property whose setter checks the value and drops the traced test
    and predict functions (the value is baked into them)."""

    def get(self):
        return getattr(self, "_" + name)

    def set(self, value):
        object.__setattr__(self, "_" + name, check(value))
        self.test_function = None
        self.predict_function = None

    return property(get, set, doc=doc)


def _check_steps(value):
    check_count("fine_tune_steps", value, 0)
    return value


@keras.saving.register_keras_serializable(package="keras_meta")
class ProtoNet(MetaModel):
    """Prototypical Networks: classify by distance to class prototypes.

    The wrapped model is an encoder mapping inputs to embeddings. Each
    class's prototype is the mean embedding of its support examples; query
    logits are negative squared Euclidean distances to the prototypes (or,
    with `distance="cosine"`, cosine similarities times a learned scale).
    Adaptation takes no gradient steps, so a meta-step costs one forward
    and backward pass.

    Args:
        model: A built `keras.Model` mapping inputs to embeddings
            `[batch, dims]` (or any shape, flattened).
        num_ways: Int, the largest number of classes per episode (logits
            per query). Each episode's classes are those its support labels
            name: one learner trains 60-way and evaluates 20-way, and the
            classes an episode lacks get logits of -1e9, so they are never
            predicted.
        distance: `"squared_euclidean"` (the default, as in the paper) or
            `"cosine"`.
        test_time_views: `None` (the default), `"default"` or a list of
            `(degrees, scale, shift_x, shift_y)` fixed affine views (see
            `keras_meta.models.AffineViews`). When evaluating, predicting
            and in `adapt()`, every support and query image is embedded as
            the mean embedding of its views (test-time augmentation); each
            query still depends on itself and the support set alone.
            Training is unchanged.
        fine_tune_steps: Int, gradient steps fine-tuning the encoder on
            each support set before it is used, when evaluating, predicting
            and in `adapt()` (0, the default, fine-tunes nothing). The loss
            classifies every view of every support image (the support
            images themselves without `test_time_views`) by its distance to
            the class prototypes of those views, whatever the learner's
            head; plain gradient descent on every encoder weight. The
            adapted model holds the fine-tuned encoder.
        fine_tune_learning_rate: Float, the step size of `fine_tune_steps`.
        batch_norm: See `keras_meta.MetaModel`.

    Example:

    ```python
    encoder = keras_meta.models.conv4(num_outputs=64)  # any embedding model
    protonet = keras_meta.ProtoNet(encoder, num_ways=5)
    protonet.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    protonet.fit(train_episodes, epochs=10)
    ```

    Reference:
        - [Snell et al., 2017](https://arxiv.org/abs/1703.05175)
    """

    def __init__(self, model, *, num_ways, distance="squared_euclidean",
                 test_time_views=None, fine_tune_steps=0,
                 fine_tune_learning_rate=0.01, **kwargs):
        super().__init__(model, **kwargs)
        check_count("num_ways", num_ways)
        if distance not in DISTANCES:
            raise ValueError(
                f"`distance` must be one of {list(DISTANCES)}. Received: "
                f"distance={distance!r}."
            )
        self.num_ways = num_ways
        self.distance = distance
        self.test_time_views = test_time_views
        self.fine_tune_steps = fine_tune_steps
        self.fine_tune_learning_rate = fine_tune_learning_rate
        if distance == "cosine":
            self.scale = self.add_weight(
                shape=(), initializer=keras.initializers.Constant(10.0),
                name="scale",
            )

    test_time_views = _retraced(
        "test_time_views",
        lambda value: check_views(value, "test_time_views"),
        "Fixed affine views embedded at test time (`None`: none); "
        "setting it retraces the test and predict functions.")
    fine_tune_steps = _retraced(
        "fine_tune_steps", _check_steps,
        "Encoder fine-tuning steps on each support set at test time; "
        "setting it retraces the test and predict functions.")
    fine_tune_learning_rate = _retraced(
        "fine_tune_learning_rate",
        lambda value: positive_number("fine_tune_learning_rate", value),
        "The step size of `fine_tune_steps`; setting it retraces the test "
        "and predict functions.")

    def meta_parameters(self):
        params = super().meta_parameters()
        if self.distance == "cosine":
            params["scale"] = backend.read_value(self.scale)
        return params

    def _views(self, training):
        """The views applied now: `test_time_views` at test time."""
        return None if training else self.test_time_views

    def embed(self, params, inputs, training):
        """Flattened embeddings of a support set (batch statistics), the
        mean over `test_time_views` at test time."""
        views = self._views(training)
        if views is not None:
            inputs = apply_views(inputs, views)
        embeddings, _ = self.run_model(
            params["weights"], params["state"], inputs, training
        )
        embeddings = ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))
        if views is not None:
            embeddings = mean_over_views(embeddings, len(views))
        return embeddings

    def embed_queries(self, params, query_inputs, training, support_inputs):
        """Flattened embeddings of a query set, normalized as `batch_norm`
        says (with the statistics of the support set's views at test
        time)."""
        views = self._views(training)
        if views is not None:
            query_inputs = apply_views(query_inputs, views)
            support_inputs = apply_views(support_inputs, views)
        embeddings, _ = self.run_query(
            params["weights"], params["state"], query_inputs, training,
            support_inputs)
        embeddings = ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))
        if views is not None:
            embeddings = mean_over_views(embeddings, len(views))
        return embeddings

    def fine_tuned(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        """`params` with the encoder's weights fine-tuned on the support
        set (`fine_tune_steps` at test time; unchanged when training)."""
        if training or not self.fine_tune_steps:
            return params
        views = self._views(training)
        inputs, labels, weights = support_inputs, support_labels, (
            support_weights)
        if views is not None:
            inputs = apply_views(support_inputs, views)
            labels = ops.tile(support_labels, (len(views),))
            if weights is not None:
                weights = ops.tile(weights, (len(views),))

        def loss_fn(encoder_weights, state):
            embeddings, _ = self.run_model(encoder_weights, params["state"],
                                           inputs, False)
            embeddings = ops.reshape(embeddings,
                                     (ops.shape(embeddings)[0], -1))
            # Prototypes of the views of each class (padding left out).
            one_hot, present = support_classes(
                labels, self.num_ways, embeddings.dtype, weights)
            counts = ops.maximum(ops.sum(one_hot, axis=0), 1.0)
            prototypes = ops.matmul(ops.transpose(one_hot),
                                    embeddings) / counts[:, None]
            logits = mask_absent_classes(-(
                ops.sum(ops.square(embeddings), axis=-1, keepdims=True)
                - 2.0 * ops.matmul(embeddings, ops.transpose(prototypes))
                + ops.sum(ops.square(prototypes), axis=-1)[None]), present)
            losses = keras.losses.sparse_categorical_crossentropy(
                ops.cast(labels, "int32"), logits, from_logits=True)
            return weighted_mean(losses, weights), state

        tuned, _ = gradient_descent(
            loss_fn, [ops.stop_gradient(w) for w in params["weights"]], (),
            learning_rate=self.fine_tune_learning_rate,
            num_steps=self.fine_tune_steps, first_order=True)
        return {**params,
                "weights": [ops.stop_gradient(w) for w in tuned]}

    # The learner's steps, around its head (`fit_head`, `head_predictions`,
    # `build_head_model`, which MatchingNet and R2D2 replace): the task
    # state carries the encoder weights the head was fitted with.

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        params = self.fine_tuned(params, support_inputs, support_labels,
                                 training, support_weights)
        head = self.fit_head(params, support_inputs, support_labels,
                             training, support_weights)
        return head, params["weights"]

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        head, weights = task_state
        return self.head_predictions({**params, "weights": weights}, head,
                                     query_inputs, training, support_inputs)

    def build_adapted_model(self, task_state, support_inputs):
        head, weights = task_state
        return self.build_head_model(
            head, [ops.convert_to_tensor(w) for w in weights],
            support_inputs)

    def adapted_encoder(self, weights, support_inputs):
        """The encoder holding `weights` as a stock Keras model that embeds
        as the learner does at test time: normalized with the statistics
        of the support set (of its views), and with `test_time_views`, the
        mean embedding of each image's views."""
        views = self._views(False)
        if views is None:
            return self.copy_model(weights, support_inputs)
        encoder = self.copy_model(weights, apply_views(support_inputs, views))
        inputs = keras.Input(shape=tuple(support_inputs.shape[1:]))
        embeddings = keras.layers.Flatten()(
            encoder(AffineViews(views)(inputs)))
        outputs = ViewMean(len(views))(embeddings)
        return keras.Model(inputs, outputs, name=f"{self.model.name}_views")

    def fit_head(self, params, support_inputs, support_labels, training,
                 support_weights=None):
        """The prototypes of a support set and which classes it holds."""
        embeddings = self.embed(params, support_inputs, training)
        one_hot, present = support_classes(
            support_labels, self.num_ways, embeddings.dtype, support_weights)
        counts = ops.maximum(ops.sum(one_hot, axis=0), 1.0)
        prototypes = ops.matmul(ops.transpose(one_hot), embeddings) / counts[
            :, None]
        return prototypes, present

    def logits(self, params, prototypes, embeddings):
        if self.distance == "cosine":
            prototypes = prototypes / ops.maximum(
                ops.norm(prototypes, axis=-1, keepdims=True), 1e-12)
            embeddings = embeddings / ops.maximum(
                ops.norm(embeddings, axis=-1, keepdims=True), 1e-12)
            return params["scale"] * ops.matmul(
                embeddings, ops.transpose(prototypes))
        return -(
            ops.sum(ops.square(embeddings), axis=-1, keepdims=True)
            - 2.0 * ops.matmul(embeddings, ops.transpose(prototypes))
            + ops.sum(ops.square(prototypes), axis=-1)[None]
        )

    def head_predictions(self, params, head, query_inputs, training,
                         support_inputs):
        """Query logits from the prototypes."""
        prototypes, present = head
        embeddings = self.embed_queries(params, query_inputs, training,
                                        support_inputs)
        return mask_absent_classes(
            self.logits(params, prototypes, embeddings), present)

    def num_outputs(self, example_shape, dtype):
        return self.num_ways

    def build_head_model(self, head, weights, support_inputs):
        """The encoder followed by a dense layer holding the prototypes.

        For squared Euclidean distance the dense layer computes
        `2 c . x - |c|^2`, from which `|x|^2` is subtracted: the
        meta-model's logits `-|x - c|^2`. For cosine distance it holds the
        scaled unit prototypes and the embedding is normalized first.
        """
        prototypes, present = (ops.convert_to_numpy(t) for t in head)
        if self.distance == "cosine":
            norms = (prototypes ** 2).sum(-1, keepdims=True) ** 0.5
            kernel = (float(self.scale.numpy()) * prototypes
                      / (norms + 1e-12)).T
            bias = 0.0 * kernel[0]
        else:
            kernel = 2.0 * prototypes.T
            bias = -(prototypes ** 2).sum(-1)
        kernel = kernel * present
        bias = np.where(present > 0, bias, ABSENT_CLASS_LOGIT)
        return with_linear_head(
            self.adapted_encoder(weights, support_inputs),
            support_inputs.shape[1:], kernel, bias,
            normalize=self.distance == "cosine",
            subtract_squared_norm=self.distance != "cosine",
            name=f"{self.model.name}_adapted",
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_ways": self.num_ways,
            "distance": self.distance,
            "test_time_views": (None if self.test_time_views is None else
                                [list(v) for v in self.test_time_views]),
            "fine_tune_steps": self.fine_tune_steps,
            "fine_tune_learning_rate": self.fine_tune_learning_rate,
        }
