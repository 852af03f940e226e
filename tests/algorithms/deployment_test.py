"""What is evaluated is what is deployed, for every learner and mode.

A Conv -> BatchNorm -> ReLU -> MaxPool -> Dropout -> Dense network; for
each learner and each `batch_norm` mode it accepts, `adapt()`'s model
predicts a task's queries as `predict()` does, `evaluate()` scores those
predictions, Dropout is inactive outside training, and in the inductive
mode a query predicted alone gets the prediction it gets in its batch.
"""

import keras
import numpy as np
from absl.testing import parameterized

import keras_meta
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
NUM_WAYS = 3


def _encoder(**kwargs):
    return testing.tiny_classifier(num_ways=NUM_WAYS, dropout=0.5, **kwargs)


def _learners():
    """(name, factory) for every learner; a factory takes `batch_norm`."""
    ways = {"num_ways": NUM_WAYS}
    return [
        ("maml", lambda bn: keras_meta.MAML(
            _encoder(), inner_learning_rate=0.3, num_inner_steps=2,
            batch_norm=bn)),
        ("fomaml", lambda bn: keras_meta.MAML(
            _encoder(), inner_learning_rate=0.3, first_order=True,
            batch_norm=bn)),
        ("maml++", lambda bn: keras_meta.MAML(
            _encoder(), inner_learning_rate=0.3, num_inner_steps=2,
            learn_inner_learning_rates=True, multi_step_loss_epochs=2,
            batch_norm=bn)),
        ("metasgd", lambda bn: keras_meta.MetaSGD(
            _encoder(), inner_learning_rate=0.3, batch_norm=bn)),
        ("anil", lambda bn: keras_meta.ANIL(
            _encoder(), inner_learning_rate=0.3, batch_norm=bn)),
        ("boil", lambda bn: keras_meta.BOIL(
            _encoder(), inner_learning_rate=0.3, batch_norm=bn)),
        ("cavia", lambda bn: keras_meta.CAVIA(
            _encoder(image_shape=(6, 6, 3)), num_context_params=2,
            inner_learning_rate=0.3, batch_norm=bn)),
        ("reptile", lambda bn: keras_meta.Reptile(
            _encoder(), inner_learning_rate=0.3, num_inner_steps=2,
            batch_norm=bn)),
        ("imaml", lambda bn: keras_meta.IMAML(
            _encoder(), inner_learning_rate=0.3, num_inner_steps=2,
            batch_norm=bn)),
        ("protonet", lambda bn: keras_meta.ProtoNet(
            _encoder(), batch_norm=bn, **ways)),
        ("matchingnet", lambda bn: keras_meta.MatchingNet(
            _encoder(), batch_norm=bn, **ways)),
        ("relationnet", lambda bn: keras_meta.RelationNet(
            _encoder(), relation_module=_relation_module(), batch_norm=bn,
            **ways)),
        ("r2d2", lambda bn: keras_meta.R2D2(
            _encoder(), batch_norm=bn, **ways)),
        ("protomaml", lambda bn: keras_meta.ProtoMAML(
            _encoder(), inner_learning_rate=0.3, batch_norm=bn, **ways)),
        ("leo", lambda bn: keras_meta.LEO(
            _encoder(), latent_dim=2, num_latent_steps=1,
            num_finetune_steps=1, batch_norm=bn, **ways)),
    ]


def _relation_module():
    # The paper's relation module normalizes too.
    return keras.Sequential([
        keras.Input((2 * NUM_WAYS,)),
        keras.layers.Dense(4, kernel_initializer=keras.initializers
                           .GlorotUniform(11)),
        keras.layers.BatchNormalization(
            gamma_initializer=keras.initializers.RandomUniform(
                0.5, 1.5, seed=12)),
        keras.layers.ReLU(),
        keras.layers.Dense(1, kernel_initializer=keras.initializers
                           .GlorotUniform(13)),
    ])


def _cases():
    cases = []
    for name, factory in _learners():
        modes = ["inductive", "transductive"]
        if name == "maml++":
            modes.append("per_step")
        for mode in modes:
            cases.append((f"{name}_{mode}", factory, mode))
    return cases


class DeploymentTest(testing.TestCase):
    @parameterized.named_parameters(*_cases())
    def test_adapted_model_predicts_as_evaluated(self, factory, batch_norm):
        meta_model = factory(batch_norm)
        channels = meta_model.model.input_shape[-1]
        inputs, labels = testing.toy_episodes(
            num_tasks=2, num_ways=NUM_WAYS, num_shots=2, num_queries=3,
            image_shape=(6, 6, channels))
        if isinstance(meta_model, keras_meta.CAVIA):
            inputs, labels = testing.toy_episodes(
                num_tasks=2, num_ways=NUM_WAYS, num_shots=2, num_queries=3,
                image_shape=(6, 6, channels - 2))
        meta_model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS,
                           metrics=["accuracy"])
        # One training step moves every weight, BatchNorm's included.
        meta_model.fit(inputs, labels, epochs=1, verbose=0)
        self.run_adapted_model_test(meta_model, (inputs, labels))

    def test_statistics_differ_between_modes(self):
        # The two modes are different functions of the same weights: the
        # consistency checks above cannot pass by both ignoring the mode.
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=NUM_WAYS,
                                         num_shots=2, num_queries=3)
        predictions = {}
        for mode in ("inductive", "transductive"):
            keras.utils.set_random_seed(1)
            meta_model = keras_meta.ProtoNet(
                testing.tiny_classifier(num_ways=NUM_WAYS),
                num_ways=NUM_WAYS, batch_norm=mode)
            predictions[mode] = meta_model.predict(inputs, verbose=0)
        gap = np.max(np.abs(predictions["inductive"]
                            - predictions["transductive"]))
        self.assertGreater(gap, 1e-2)
