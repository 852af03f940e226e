"""MANN: a memory-augmented neural network for few-shot classification."""

import keras

from keras_meta.algorithms.snail import SequenceClassifier


@keras.saving.register_keras_serializable(package="keras_meta")
class MANN(SequenceClassifier):
    """A memory-augmented network: support pairs written to an external
    memory, queries read from it.

    Every support example is embedded by the wrapped model and fed, with its
    one-hot label, to an LSTM controller with a least-recently-used-access
    memory (`keras_meta.models.MANNCell`); each query, embedded and with a
    zero label, takes one more step from the memory the support set left,
    and the step's output gives its logits. Nothing adapts by gradient: the
    controller learns what to write and how to read. Each query gets its
    own sequence, so queries never see (or write for) one another.

    In training the support order is shuffled for every task; in evaluation
    and `adapt()` the order given is used. Padded support examples
    (`support_weights` 0) are masked: they are moved after the query, which
    the recurrence never lets it see, so predictions do not depend on
    padding. Classes without support examples are never predicted.

    The paper feeds each example with the previous example's label and
    scores every step of a 50-example sequence; here the support examples
    come with their own labels and only the queries are scored, as the
    episode contract has it. `predict_sequence()` scores the paper's way
    (each example predicted before its label is seen), and
    `benchmarks/omniglot_online.py` reports the accuracy by instance.

    Args:
        model: A built `keras.Model` mapping examples to embeddings
            `[batch, dims]` (or any shape, flattened). The paper used raw
            pixels (a `Flatten`); a convolutional embedding learns faster.
        num_ways: Int, the largest number of classes per episode.
        sequence_model: Optional built `keras.Model` mapping sequences
            `[batch, time, dims + num_ways]` to logits `[batch, time,
            num_ways]`, causal in time. Defaults to
            `keras_meta.models.mann_sequence_model` with the arguments
            below (the paper's Omniglot network).
        units: Int, the LSTM controller's size.
        memory_size: Int, the memory's slots.
        memory_width: Int, each slot's width.
        num_reads: Int, the read and write heads.
        usage_decay: Float, the usage's decay `gamma`.
        seed: Optional int, for the default network's initial weights and
            the support order's shuffling.
        batch_norm: See `keras_meta.MetaModel`.

    Training details: the loss is the compiled loss on the queries'
    last-step logits only. A recurrent learner's loss can sit at
    `ln(num_ways)` for a while before it finds the labels in the memory;
    shuffling the support order keeps it from predicting by position.

    Reference:
        - [Santoro et al., 2016](https://arxiv.org/abs/1605.06065)
    """

    def __init__(self, model, *, num_ways, sequence_model=None, units=200,
                 memory_size=128, memory_width=40, num_reads=4,
                 usage_decay=0.95, seed=None, **kwargs):
        self.memory_options = {
            "units": units, "memory_size": memory_size,
            "memory_width": memory_width, "num_reads": num_reads,
            "usage_decay": usage_decay}
        super().__init__(model, num_ways=num_ways,
                         sequence_model=sequence_model, seed=seed, **kwargs)

    def _default_sequence_model(self):
        from keras_meta import models

        return models.mann_sequence_model(
            num_ways=self.num_ways, feature_dim=self.feature_dim,
            seed=self.seed, **self.memory_options)

    def get_config(self):
        config = super().get_config()
        config.update(self.memory_options)
        return config
