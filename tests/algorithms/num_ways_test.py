"""Metric learners take each episode's classes from its support labels.

A learner built for at most 5 classes, given 3-way episodes, scores the 3
classes exactly as a 3-way learner with the same weights does and never
predicts the 2 classes the episode lacks; it trains at one number of ways
and evaluates at another.
"""

import keras
import numpy as np
from absl.testing import parameterized

import keras_meta
from keras_meta import testing
from keras_meta.algorithms.heads import ABSENT_CLASS_LOGIT

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _encoder():
    return keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Flatten(),
        keras.layers.Dense(4, activation="tanh",
                           kernel_initializer=keras.initializers
                           .GlorotUniform(3)),
    ])


LEARNERS = (
    ("protonet", lambda m, w: keras_meta.ProtoNet(m, num_ways=w)),
    ("protonet_cosine", lambda m, w: keras_meta.ProtoNet(
        m, num_ways=w, distance="cosine")),
    ("matchingnet", lambda m, w: keras_meta.MatchingNet(m, num_ways=w)),
    ("relationnet", lambda m, w: keras_meta.RelationNet(
        m, num_ways=w,
        relation_module=keras_meta.algorithms.relation_net
        .default_relation_module(4, seed=5))),
    ("r2d2", lambda m, w: keras_meta.R2D2(m, num_ways=w)),
    ("protomaml", lambda m, w: keras_meta.ProtoMAML(
        m, num_ways=w, inner_learning_rate=0.5, num_inner_steps=2)),
    ("leo", lambda m, w: keras_meta.LEO(
        m, num_ways=w, latent_dim=2, num_latent_steps=1,
        num_finetune_steps=1, seed=3)),
)


def _copy(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


class NumWaysTest(testing.TestCase):
    @parameterized.named_parameters(*LEARNERS)
    def test_fewer_ways_than_the_maximum(self, factory):
        encoder = _encoder()
        wide = factory(_copy(encoder), 5)
        narrow = factory(_copy(encoder), 3)
        # The learners' own weights (relation module, LEO's networks) too.
        narrow.set_weights(wide.get_weights())
        for learner in (wide, narrow):
            learner.compile(loss=LOSS, metrics=["accuracy"])
        inputs, labels = testing.toy_episodes(num_tasks=3, num_ways=3)
        predictions = wide.predict(inputs, verbose=0)
        self.assertEqual(predictions.shape[-1], 5)
        # The absent classes are never predicted...
        self.assertTrue(np.all(predictions[..., 3:] <= ABSENT_CLASS_LOGIT / 2))
        self.assertTrue(np.all(np.argmax(predictions, -1) < 3))
        # ...and the present ones are scored as a 3-way learner scores them.
        self.assertAllClose(predictions[..., :3],
                            narrow.predict(inputs, verbose=0),
                            atol=1e-5, rtol=1e-5)
        self.assertAllClose(
            wide.evaluate(inputs, labels, verbose=0, return_dict=True)["loss"],
            narrow.evaluate(inputs, labels, verbose=0,
                            return_dict=True)["loss"], atol=1e-5, rtol=1e-5)
        learner = wide.adapt(inputs["support_inputs"][0],
                             inputs["support_labels"][0])
        deployed = learner.predict(inputs["query_inputs"][0], verbose=0)
        self.assertTrue(np.all(np.argmax(deployed, -1) < 3))
        self.assertAllClose(deployed[:, :3], predictions[0, :, :3],
                            atol=1e-4, rtol=1e-4)

    def test_train_wide_evaluate_narrow(self):
        learner = keras_meta.ProtoNet(_encoder(), num_ways=5)
        learner.compile(optimizer="adam", loss=LOSS, metrics=["accuracy"])
        inputs, labels = testing.toy_episodes(num_tasks=4, num_ways=5)
        learner.fit(inputs, labels, epochs=2, verbose=0)
        inputs, labels = testing.toy_episodes(num_tasks=4, num_ways=2,
                                              seed=1)
        logs = learner.evaluate(inputs, labels, verbose=0, return_dict=True)
        predictions = learner.predict(inputs, verbose=0)
        self.assertTrue(np.all(np.argmax(predictions, -1) < 2))
        self.assertAllClose(logs["accuracy"], np.mean(
            np.argmax(predictions, -1) == labels), atol=1e-6)

    def test_more_ways_than_the_maximum_is_refused(self):
        learner = keras_meta.ProtoNet(_encoder(), num_ways=3)
        learner.compile(loss=LOSS)
        inputs, labels = testing.toy_episodes(num_tasks=2, num_ways=4)
        with self.assertRaisesRegex(ValueError, "num_ways"):
            learner.predict(inputs, verbose=0)
