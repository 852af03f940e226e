"""The memory-augmented network of Santoro et al. (2016) as a Keras cell."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_meta")
class MANNCell(keras.layers.Layer):
    """An LSTM controller with a least-recently-used-access external memory.

    A Keras RNN cell (wrap it in `keras.layers.RNN`). At each step the LSTM
    controller reads the input and the previous step's memory reads; from
    its output every read head forms a key `k` (tanh), a key strength and a
    write gate `alpha`, then:

    1. reads: `w_r = softmax(beta * cosine(k, M_i))` over the memory's
       slots, as the previous steps left them, and `r = sum_i w_r(i) M_i`;
    2. writes (least-recently-used access): the least used slots, by the
       previous usage, are cleared, then each head adds its key with
       weights `w_w = sigmoid(alpha) w_r' + (1 - sigmoid(alpha)) w_lu'`,
       where `w_r'` are its previous read weights and `w_lu'` is one-hot on
       its least used slot (head `h` takes the `h + 1`-th least used);
    3. usage decays and accumulates: `w_u = gamma w_u' + sum_h (w_r + w_w)`.

    The step's output is the controller's output with the reads.

    Choices the paper leaves open, as made here: the memory starts at zero
    and is read before the step writes (so a query reads what came before
    it, never itself); each head has its own least used slot, and those
    slots are the ones cleared; ties in usage go to the lower slot index. A
    key strength `beta = 1 + softplus(.)` sharpens the reads as in the
    Neural Turing Machine: the paper's equations omit it, and without it a
    softmax over 128 cosines in [-1, 1] cannot put more than 6% of its
    weight on one slot. The heads' biases start at `initial_key_strength`
    and `initial_write_gate`: measured on Omniglot 5-way 1-shot (Conv-4-32,
    meta-batch 8, Adam 1e-3), with biases at zero (strength 1.7, gate 0.5)
    the loss stayed at ln 5 for 1000 steps; with strength 10 and gate 0.12
    (sharp reads, writes mostly to fresh slots) it left ln 5 after about
    250 steps and reached 87% training accuracy by 400.

    Args:
        units: Int, the LSTM controller's size.
        memory_size: Int, the memory's slots.
        memory_width: Int, each slot's (and key's) width.
        num_reads: Int, the read (and write) heads.
        usage_decay: Float in [0, 1), `gamma`.
        initial_key_strength: Float > 1, every head's `beta` at
            initialization.
        initial_write_gate: Float in (0, 1), every head's
            `sigmoid(alpha)` at initialization: the share of a write that
            goes to the previously read slots.
        seed: Optional int, for the initial weights.

    Reference:
        - [Santoro et al., 2016](https://arxiv.org/abs/1605.06065)
    """

    def __init__(self, units, *, memory_size=128, memory_width=40,
                 num_reads=4, usage_decay=0.95, initial_key_strength=10.0,
                 initial_write_gate=0.12, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("units", units), ("memory_size", memory_size),
                            ("memory_width", memory_width),
                            ("num_reads", num_reads)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int. "
                                 f"Received: {name}={value!r}.")
        if num_reads > memory_size:
            raise ValueError(
                f"Each of the {num_reads} heads needs its own slot, but the "
                f"memory has {memory_size}; pass num_reads <= memory_size.")
        if not 0.0 <= usage_decay < 1.0:
            raise ValueError("`usage_decay` must be in [0, 1). Received: "
                             f"usage_decay={usage_decay!r}.")
        if not initial_key_strength > 1.0:
            raise ValueError(
                "`initial_key_strength` must exceed 1 (beta = 1 + "
                f"softplus). Received: {initial_key_strength!r}.")
        if not 0.0 < initial_write_gate < 1.0:
            raise ValueError(
                "`initial_write_gate` must be in (0, 1). Received: "
                f"{initial_write_gate!r}.")
        self.initial_key_strength = initial_key_strength
        self.initial_write_gate = initial_write_gate
        self.units = units
        self.memory_size = memory_size
        self.memory_width = memory_width
        self.num_reads = num_reads
        self.usage_decay = usage_decay
        self.seed = seed
        self.controller = keras.layers.LSTMCell(
            units, kernel_initializer=self._initializer(0),
            recurrent_initializer=keras.initializers.Orthogonal(
                seed=None if seed is None else seed + 1),
            name="controller")
        reads = num_reads * memory_width
        # The controller's state, the memory, the usage, the read weights
        # and the reads.
        self.state_size = [units, units, memory_size * memory_width,
                           memory_size, num_reads * memory_size, reads]
        self.output_size = units + reads

    def _initializer(self, offset):
        return keras.initializers.GlorotUniform(
            None if self.seed is None else self.seed + offset)

    def build(self, input_shape):
        reads = self.num_reads * self.memory_width
        self.controller.build((input_shape[0], input_shape[-1] + reads))
        self.key_kernel = self.add_weight(
            shape=(self.units, reads), initializer=self._initializer(2),
            name="key_kernel")
        self.key_bias = self.add_weight(shape=(reads,), initializer="zeros",
                                        name="key_bias")
        # Per head: the key strength and the write gate.
        self.head_kernel = self.add_weight(
            shape=(self.units, 2 * self.num_reads),
            initializer=self._initializer(3), name="head_kernel")
        strength = math.log(math.expm1(self.initial_key_strength - 1.0))
        gate = math.log(self.initial_write_gate
                        / (1.0 - self.initial_write_gate))

        def head_bias(shape, dtype=None):
            r = self.num_reads
            return ops.cast(ops.concatenate(
                [ops.full((r,), strength), ops.full((r,), gate)]), dtype)

        self.head_bias = self.add_weight(
            shape=(2 * self.num_reads,), initializer=head_bias,
            name="head_bias")

    def call(self, inputs, states, training=False):
        h, c, memory, usage, read_weights, reads = states
        batch = ops.shape(inputs)[0]
        n, w, r = self.memory_size, self.memory_width, self.num_reads
        memory = ops.reshape(memory, (batch, n, w))
        read_weights = ops.reshape(read_weights, (batch, r, n))
        output, (h, c) = self.controller(
            ops.concatenate([inputs, reads], axis=-1), [h, c],
            training=training)
        keys = ops.reshape(ops.tanh(ops.matmul(output, self.key_kernel)
                                    + self.key_bias), (batch, r, w))
        heads = ops.matmul(output, self.head_kernel) + self.head_bias
        strength = 1.0 + ops.softplus(heads[:, :r])
        gate = ops.sigmoid(heads[:, r:])

        # Read the memory as the previous steps left it.
        norms = ops.sqrt(ops.sum(ops.square(memory), axis=-1) + 1e-8)
        key_norms = ops.sqrt(ops.sum(ops.square(keys), axis=-1) + 1e-8)
        cosine = ops.einsum("brw,bnw->brn", keys, memory) / (
            key_norms[:, :, None] * norms[:, None, :])
        new_read_weights = ops.softmax(strength[:, :, None] * cosine,
                                       axis=-1)
        new_reads = ops.einsum("brn,bnw->brw", new_read_weights, memory)

        # Least recently used access, from the previous usage.
        least_used = _least_used(usage, r, memory.dtype)
        write_weights = (gate[:, :, None] * read_weights
                         + (1.0 - gate[:, :, None]) * least_used)
        cleared = 1.0 - ops.sum(least_used, axis=1)
        memory = (memory * cleared[:, :, None]
                  + ops.einsum("brn,brw->bnw", write_weights, keys))
        usage = (self.usage_decay * usage
                 + ops.sum(new_read_weights + write_weights, axis=1))

        new_reads = ops.reshape(new_reads, (batch, r * w))
        return ops.concatenate([output, new_reads], axis=-1), [
            h, c, ops.reshape(memory, (batch, n * w)), usage,
            ops.reshape(new_read_weights, (batch, r * n)), new_reads]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype)
                for size in self.state_size]

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "memory_size": self.memory_size,
            "memory_width": self.memory_width,
            "num_reads": self.num_reads,
            "usage_decay": self.usage_decay,
            "initial_key_strength": self.initial_key_strength,
            "initial_write_gate": self.initial_write_gate,
            "seed": self.seed,
        })
        return config


def _least_used(usage, count, dtype):
    """One-hot rows `[batch, count, slots]` of the `count` least used slots,
    least used first, the lower index first on ties.

    Ranks every slot against every other instead of `ops.top_k`, whose
    order among equal values differs between backends (torch's `topk`
    returns tied slots in no fixed order, and a fresh memory is all ties).
    """
    slots = ops.shape(usage)[-1]
    index = ops.arange(slots)
    mine, other = usage[:, :, None], usage[:, None, :]
    before = ops.logical_or(
        ops.less(other, mine),
        ops.logical_and(ops.equal(other, mine),
                        ops.less(index[None, :], index[:, None])[None]))
    rank = ops.sum(ops.cast(before, "int32"), axis=-1)
    return ops.cast(ops.equal(rank[:, None, :],
                              ops.arange(count, dtype="int32")[None, :, None]),
                    dtype)


def mann_sequence_model(*, num_ways, feature_dim, units=200, memory_size=128,
                        memory_width=40, num_reads=4, usage_decay=0.95,
                        seed=None, name="mann"):
    """A memory-augmented network for few-shot classification.

    Takes sequences `[batch, time, feature_dim + num_ways]` (an embedded
    example with its one-hot label; zeros for the query's label) and
    returns `[batch, time, num_ways]` logits, each step seeing only the
    steps before it: `keras.layers.RNN` over a `MANNCell`, then a `Dense`
    layer on each step's controller output and reads. The defaults are the
    paper's Omniglot network (an LSTM of 200 units, 128 slots of 40, four
    heads).

    Args:
        num_ways: Int, the classes (the label width and the outputs).
        feature_dim: Int, the embedding's width.
        units, memory_size, memory_width, num_reads, usage_decay: See
            `MANNCell`.
        seed: Optional int, for the initial weights.

    Returns:
        A built functional `keras.Model`.
    """
    inputs = keras.Input(shape=(None, feature_dim + num_ways))
    cell = MANNCell(units, memory_size=memory_size,
                    memory_width=memory_width, num_reads=num_reads,
                    usage_decay=usage_decay, seed=seed, name="memory_cell")
    steps = keras.layers.RNN(cell, return_sequences=True, name="memory")(
        inputs)
    outputs = keras.layers.Dense(
        num_ways, kernel_initializer=keras.initializers.GlorotUniform(
            None if seed is None else seed + 4), name="logits")(steps)
    return keras.Model(inputs, outputs, name=name)
