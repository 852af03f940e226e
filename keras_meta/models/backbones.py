"""Standard backbones, built and ready to wrap in a `MetaModel`."""

import math

import keras


def mlp(
    *,
    input_shape=(1,),
    hidden_units=(40, 40),
    num_outputs=1,
    activation="relu",
    seed=None,
    name="mlp",
):
    """The fully connected network of the MAML sinusoid experiments.

    The defaults give the 1-40-40-1 ReLU regressor of Finn et al. (2017),
    section 5.1.

    Args:
        input_shape: Tuple, shape of one example. Defaults to `(1,)`.
        hidden_units: Tuple of ints, width of each hidden layer. Defaults to
            `(40, 40)`.
        num_outputs: Int, size of the output. Defaults to `1`.
        activation: Activation of the hidden layers. Defaults to `"relu"`.
        seed: Optional int, seeds the weight initializers.
        name: String, the model's name.

    Returns:
        A built `keras.Sequential`.
    """
    layers = [keras.Input(shape=input_shape)]
    for i, units in enumerate(hidden_units):
        layers.append(
            keras.layers.Dense(
                units,
                activation=activation,
                kernel_initializer=keras.initializers.GlorotUniform(
                    None if seed is None else seed + i
                ),
                name=f"dense_{i}",
            )
        )
    layers.append(
        keras.layers.Dense(
            num_outputs,
            kernel_initializer=keras.initializers.GlorotUniform(
                None if seed is None else seed + len(hidden_units)
            ),
            name="output",
        )
    )
    return keras.Sequential(layers, name=name)


def conv4(
    *,
    num_outputs,
    input_shape=(28, 28, 1),
    filters=64,
    num_blocks=4,
    pool=True,
    seed=None,
    name="conv4",
):
    """The four-block convolutional backbone of the few-shot literature.

    Each block is a 3x3 convolution, BatchNormalization, ReLU and 2x2 max
    pooling, followed by a dense layer of `num_outputs` logits (Vinyals et
    al., 2016; Finn et al., 2017). Use `filters=64` for Omniglot and
    `filters=32` for mini-ImageNet, as in the MAML paper.

    Args:
        num_outputs: Int, the number of ways (logits), or `None` for an
            embedding network ending at the flattened features (the
            encoder of ProtoNet and the other metric learners).
        input_shape: Tuple `(height, width, channels)`. Defaults to
            `(28, 28, 1)`.
        filters: Int, filters per convolution. Defaults to `64`.
        num_blocks: Int, number of blocks. Defaults to `4`.
        pool: Bool. If `False`, blocks downsample with stride 2 instead of
            pooling (MAML's Omniglot variant). Defaults to `True`.
        seed: Optional int, seeds the weight initializers.
        name: String, the model's name.

    Returns:
        A built `keras.Sequential` mapping images to logits.
    """
    _check_num_outputs(num_outputs)

    def initializer(i):
        return keras.initializers.GlorotUniform(
            None if seed is None else seed + i
        )

    layers = [keras.Input(shape=input_shape)]
    for i in range(num_blocks):
        layers += [
            keras.layers.Conv2D(
                filters,
                3,
                strides=1 if pool else 2,
                padding="same",
                kernel_initializer=initializer(i),
                name=f"conv_{i}",
            ),
            keras.layers.BatchNormalization(name=f"batch_norm_{i}"),
            keras.layers.ReLU(name=f"relu_{i}"),
        ]
        if pool:
            layers.append(
                keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{i}")
            )
    layers.append(keras.layers.Flatten(name="flatten"))
    if num_outputs is None:
        return keras.Sequential(layers, name=name)
    layers += [
        keras.layers.Dense(
            num_outputs, kernel_initializer=initializer(num_blocks), name="logits"
        ),
    ]
    return keras.Sequential(layers, name=name)


def resnet12(
    *,
    num_outputs,
    input_shape=(84, 84, 3),
    filters=(64, 160, 320, 640),
    seed=None,
    name="resnet12",
):
    """The ResNet-12 of the few-shot literature.

    Four residual blocks, each three 3x3 convolutions with
    BatchNormalization and LeakyReLU (slope 0.1), a 1x1 convolution with
    BatchNormalization on the shortcut, the sum activated, then 2x2 max
    pooling; global average pooling gives the embedding (widths 64, 160,
    320, 640 as in Oreshkin et al., 2018 and Lee et al., 2019; their
    DropBlock regularization is left out). A dense layer of `num_outputs`
    logits follows unless `num_outputs` is `None`.

    Args:
        num_outputs: Int, the number of ways (logits), or `None` for the
            embedding network (the encoder of ProtoNet and the other
            metric learners).
        input_shape: Tuple `(height, width, channels)`, any size of at
            least 16x16. Defaults to mini-ImageNet's `(84, 84, 3)`.
        filters: Tuple of four ints, each block's width.
        seed: Optional int, seeds the weight initializers.
        name: String, the model's name.

    Returns:
        A built functional `keras.Model`.
    """
    _check_num_outputs(num_outputs)
    if len(filters) != 4:
        raise ValueError(
            f"`filters` must give the widths of the 4 blocks. Received: "
            f"filters={filters!r}.")
    counter = iter(range(10_000))

    def conv(width, size):
        return keras.layers.Conv2D(
            width, size, padding="same", use_bias=False,
            kernel_initializer=keras.initializers.HeNormal(
                None if seed is None else seed + next(counter)))

    inputs = keras.Input(shape=input_shape)
    x = inputs
    for width in filters:
        shortcut = keras.layers.BatchNormalization()(conv(width, 1)(x))
        for i in range(3):
            x = keras.layers.BatchNormalization()(conv(width, 3)(x))
            if i < 2:
                x = keras.layers.LeakyReLU(negative_slope=0.1)(x)
        x = keras.layers.LeakyReLU(negative_slope=0.1)(
            keras.layers.Add()([x, shortcut]))
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D(name="embedding")(x)
    if num_outputs is not None:
        x = keras.layers.Dense(
            num_outputs, name="logits",
            kernel_initializer=keras.initializers.GlorotUniform(
                None if seed is None else seed + next(counter)))(x)
    return keras.Model(inputs, x, name=name)


def _check_num_outputs(num_outputs):
    if num_outputs is not None and (
            isinstance(num_outputs, bool) or not isinstance(num_outputs, int)
            or num_outputs < 1):
        raise ValueError(
            f"`num_outputs` must be a positive integer or None. Received: "
            f"num_outputs={num_outputs!r}."
        )


def _relu_network(inputs, outputs, hidden_units, name, seed, offset):
    """ReLU layers of `hidden_units`, then a linear layer of `outputs`."""
    layers = [keras.Input(shape=(inputs,))]
    for i, units in enumerate(hidden_units):
        layers.append(keras.layers.Dense(
            units, activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(
                None if seed is None else seed + offset + i)))
    layers.append(keras.layers.Dense(
        outputs, kernel_initializer=keras.initializers.GlorotUniform(
            None if seed is None else seed + offset + len(hidden_units))))
    return keras.Sequential(layers, name=name)


def neural_process_networks(*, x_dim=1, y_dim=1, representation_dim=128,
                            hidden_units=(128, 128), seed=None):
    """The encoder and decoder of a Conditional Neural Process.

    The encoder maps a support pair (`x_dim + y_dim` features) through
    ReLU layers of `hidden_units` to a `representation_dim` vector; the
    decoder maps a query with the representation (`x_dim +
    representation_dim` features) through the same widths to `2 * y_dim`
    values (means and raw standard deviations), as in Garnelo et al.
    (2018).

    Returns:
        `(encoder, decoder)`, two built `keras.Sequential` models.
    """
    return (_relu_network(x_dim + y_dim, representation_dim, hidden_units,
                          "encoder", seed, 0),
            _relu_network(x_dim + representation_dim, 2 * y_dim,
                          hidden_units, "decoder", seed, 100))


def attentive_neural_process_networks(*, x_dim=1, y_dim=1,
                                      representation_dim=128, latent_dim=128,
                                      hidden_units=(128, 128), seed=None):
    """The encoders and decoder of an Attentive Neural Process.

    The deterministic encoder and the latent encoder each map a support pair
    (`x_dim + y_dim` features) through ReLU layers of `hidden_units` to
    `representation_dim` (values for the attention) and `latent_dim`
    features (averaged for the latent variable); the decoder maps `x_dim +
    representation_dim + latent_dim` features through the same widths to
    `2 * y_dim` values, as in Kim et al. (2019).

    Returns:
        `(encoder, latent_encoder, decoder)`, built `keras.Sequential`
        models (pass `latent_dim` to `keras_meta.ANP` too); with
        `latent_dim=0` there is no latent path and `latent_encoder` is
        `None`.
    """
    pair = x_dim + y_dim
    return (_relu_network(pair, representation_dim, hidden_units, "encoder",
                          seed, 0),
            _relu_network(pair, latent_dim, hidden_units, "latent_encoder",
                          seed, 50) if latent_dim else None,
            _relu_network(x_dim + representation_dim + latent_dim,
                          2 * y_dim, hidden_units, "decoder", seed, 100))


def snail_sequence_model(*, num_ways, feature_dim, max_sequence_length,
                         seed=None, name="snail"):
    """SNAIL's sequence network for few-shot classification.

    Takes sequences `[batch, time, feature_dim + num_ways]` (an embedded
    example with its one-hot label; zeros for the query's label) and
    returns `[batch, time, num_ways]` logits, each time step seeing only the
    steps before it. The Omniglot architecture of Mishra et al. (2018):
    attention block (keys 64, values 32), temporal-convolution block (128
    filters), attention block (256, 128), temporal-convolution block (128),
    attention block (512, 256), then a 1x1 convolution to `num_ways`.

    A temporal-convolution block stacks `ceil(log2(max_sequence_length))`
    dense blocks of dilation 1, 2, 4, ...: a causal `Conv1D` of kernel 2,
    gated as `tanh(f) * sigmoid(g)`, concatenated to its input. An attention
    block is single-head causal dot-product attention (scaled by the key
    size's square root) whose read is concatenated to its input. Stock
    Keras layers only.

    The paper's pseudocode numbers the dilations `2**i` from `i = 1`; they
    start at 1 here. With kernel-2 convolutions, dilations 2, 4, ... reach
    only even offsets; 1, 2, 4, ... give each block a receptive field of
    `2**ceil(log2(max_sequence_length))` steps that covers every earlier
    step.

    Args:
        num_ways: Int, the classes (the label width and the outputs).
        feature_dim: Int, the embedding's width.
        max_sequence_length: Int, the longest sequence (support examples
            plus one query), which sets the dilations.
        seed: Optional int, for the initial weights.

    Returns:
        A built functional `keras.Model`.
    """
    counter = iter(range(10_000))

    def initializer():
        return keras.initializers.GlorotUniform(
            None if seed is None else seed + next(counter))

    def tc_block(x, filters):
        for i in range(max(1, math.ceil(math.log2(max_sequence_length)))):
            x = _snail_dense_block(x, 2 ** i, filters, initializer)
        return x

    def attention_block(x, key_size, value_size):
        return _snail_attention_block(x, key_size, value_size, initializer)

    inputs = keras.Input(shape=(None, feature_dim + num_ways))
    x = attention_block(inputs, 64, 32)
    x = tc_block(x, 128)
    x = attention_block(x, 256, 128)
    x = tc_block(x, 128)
    x = attention_block(x, 512, 256)
    outputs = keras.layers.Conv1D(num_ways, 1,
                                  kernel_initializer=initializer())(x)
    return keras.Model(inputs, outputs, name=name)


def _snail_attention_block(x, key_size, value_size, initializer):
    """Causal single-head attention; its read concatenated to `x`."""
    query = keras.layers.Dense(key_size, kernel_initializer=initializer())(x)
    query = keras.layers.Rescaling(1.0 / math.sqrt(key_size))(query)
    key = keras.layers.Dense(key_size, kernel_initializer=initializer())(x)
    value = keras.layers.Dense(value_size, kernel_initializer=initializer())(x)
    read = keras.layers.Attention(score_mode="dot")(
        [query, value, key], use_causal_mask=True)
    return keras.layers.Concatenate()([x, read])


def _snail_dense_block(x, dilation, filters, initializer):
    """A gated causal convolution of kernel 2, concatenated to `x`."""
    def conv(activation):
        return keras.layers.Conv1D(
            filters, 2, dilation_rate=dilation, padding="causal",
            activation=activation, kernel_initializer=initializer())(x)

    gated = keras.layers.Multiply()([conv("tanh"), conv("sigmoid")])
    return keras.layers.Concatenate()([x, gated])
