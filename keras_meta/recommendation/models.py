"""The field recommender of cold-start recommendation (MeLU's network):
embeddings of a user's and an item's categorical fields, and a decision
network that scores the pair."""

import keras


@keras.saving.register_keras_serializable(package="keras_meta")
class FieldCode(keras.layers.Layer):
    """Column `index` of a feature vector, as integer codes."""

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, inputs):
        return keras.ops.cast(inputs[:, self.index], "int32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="keras_meta")
class MultiHotMean(keras.layers.Layer):
    """Columns `start:` of a feature vector (a multi-hot), scaled to sum to
    one, so that a dense layer after it averages the active embeddings."""

    def __init__(self, start, **kwargs):
        super().__init__(**kwargs)
        self.start = int(start)

    def call(self, inputs):
        hot = inputs[:, self.start:]
        return hot / keras.ops.maximum(
            keras.ops.sum(hot, axis=-1, keepdims=True), 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start}


def field_recommender(features, *, embedding_dim=32, hidden_units=(64, 64),
                      seed=None, name="field_recommender"):
    """A rating predictor from embedded user and item features (MeLU's).

    Each categorical field of `features` gets an embedding; the genre
    multi-hot is embedded as the mean of its genres' embeddings; the
    embeddings are concatenated and passed through dense ReLU "decision"
    layers to one predicted rating. The decision layers are named
    `decision_0`, `decision_1`, ... and `rating`, so that MeLU, which
    adapts only them per user, is
    `keras_meta.ANIL(model, head=["decision_0", "decision_1", "rating"])`
    (`field_recommender_head(model)` gives that list), and full MAML or
    Meta-SGD adapt every weight.

    Args:
        features: A `keras_meta.data.MovieLensFeatures` (or any object with
            `fields`, `cardinalities` and `genres`).
        embedding_dim: Int, the size of every embedding. Defaults to `32`.
        hidden_units: The decision layers. Defaults to `(64, 64)` (MeLU).
        seed: Optional int seeding the initializers.

    Returns:
        A built functional `keras.Model` from `[batch, features.size]` to
        `[batch, 1]`.
    """
    num_fields = len(features.fields)
    inputs = keras.Input((num_fields + len(features.genres),),
                         name="features")

    def initializer(offset):
        return keras.initializers.GlorotUniform(
            None if seed is None else seed + offset)

    embedded = []
    for i, (field, cardinality) in enumerate(
            zip(features.fields, features.cardinalities)):
        codes = FieldCode(i, name=f"{field}_code")(inputs)
        embedded.append(keras.layers.Embedding(
            int(cardinality), embedding_dim, name=f"{field}_embedding",
            embeddings_initializer=keras.initializers.RandomUniform(
                -0.05, 0.05, seed=None if seed is None else seed + 100 + i))(
                    codes))
    if features.genres:
        genres = MultiHotMean(num_fields, name="genre_weights")(inputs)
        embedded.append(keras.layers.Dense(
            embedding_dim, use_bias=False, name="genre_embedding",
            kernel_initializer=initializer(200))(genres))
    x = keras.layers.Concatenate(name="embeddings")(embedded)
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation="relu",
                               kernel_initializer=initializer(300 + i),
                               name=f"decision_{i}")(x)
    outputs = keras.layers.Dense(1, kernel_initializer=initializer(400),
                                 name="rating")(x)
    return keras.Model(inputs, outputs, name=name)


def field_recommender_head(model):
    """The names of a `field_recommender`'s decision layers (MeLU's locally
    updated layers)."""
    return [layer.name for layer in model.layers
            if layer.name.startswith("decision_") or layer.name == "rating"]
