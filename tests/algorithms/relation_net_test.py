import keras
import numpy as np

import keras_meta
from keras_meta import RelationNet
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _encoder(units=5):
    return keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Flatten(),
        keras.layers.Dense(units, activation="tanh",
                           kernel_initializer=keras.initializers
                           .GlorotUniform(seed=3)),
    ])


class RelationNetTest(testing.TestCase):
    def test_scores_match_numpy(self):
        encoder = _encoder()
        relation = RelationNet(encoder, num_ways=3)
        relation.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2)
        w1, b1, w2, b2 = (v.numpy() for v in
                          relation.relation_module.trainable_variables)
        expected = []
        for t in range(2):
            s = keras.ops.convert_to_numpy(encoder(inputs["support_inputs"][t]))
            q = keras.ops.convert_to_numpy(encoder(inputs["query_inputs"][t]))
            labels = inputs["support_labels"][t]
            classes = np.stack([s[labels == k].mean(0) for k in range(3)])
            scores = np.zeros((len(q), 3))
            for i in range(len(q)):
                for k in range(3):
                    pair = np.concatenate([q[i], classes[k]])
                    hidden = np.maximum(pair @ w1 + b1, 0)
                    scores[i, k] = (hidden @ w2 + b2)[0]
            expected.append(scores)
        self.assertAllClose(relation.predict(inputs, verbose=0),
                            np.stack(expected), atol=1e-5, rtol=1e-5)

    def test_feature_maps_with_a_convolutional_module(self):
        encoder = keras.Sequential([
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(3, 3, padding="same")])
        module = keras.Sequential([
            keras.Input((6, 6, 6)), keras.layers.Conv2D(2, 3),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
        relation = RelationNet(encoder, num_ways=3, relation_module=module)
        relation.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2)
        self.assertEqual(relation.predict(inputs, verbose=0).shape, (2, 6, 3))
        self.assertAdaptedModelMatches(relation, inputs)

    def test_meta_gradient_finite_differences(self):
        keras.config.set_floatx("float64")
        inputs, labels = testing.toy_episodes(num_tasks=2, dtype="float64")
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        encoder = keras.Sequential([
            keras.Input((6, 6, 1)), keras.layers.Flatten(),
            keras.layers.Dense(3, activation="tanh")])
        relation = RelationNet(encoder, num_ways=3)
        relation.compile(loss=loss)
        self.assertLess(
            testing.meta_gradient_error(relation, loss, inputs, labels), 1e-6)

    def test_basics(self):
        self.run_meta_model_test(
            cls=RelationNet,
            init_kwargs={"model": _encoder(), "num_ways": 3},
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )

    def test_paper_objective(self):
        # MSE of sigmoid scores against one-hot labels, absent classes
        # (score -1e9) adding nothing.
        loss = keras_meta.losses.RelationMeanSquaredError()
        scores = np.array([[2.0, -1.0, -1e9], [0.5, 0.0, -1e9]])
        labels = np.array([0, 1])
        sigmoid = 1.0 / (1.0 + np.exp(-scores))
        expected = np.mean(
            np.mean((sigmoid - np.eye(3)[labels]) ** 2, axis=-1))
        self.assertAllClose(loss(labels, scores), expected, 1e-6, 1e-6)
        # RelationNet trains with it: the training loss falls.
        relation = RelationNet(_encoder(), num_ways=3)
        relation.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
        inputs, query_labels = testing.toy_episodes(num_tasks=4)
        history = relation.fit(inputs, query_labels, epochs=20,
                               batch_size=4, verbose=0)
        self.assertLess(history.history["loss"][-1],
                        0.7 * history.history["loss"][0])

    def test_adapted_model_matches(self):
        relation = RelationNet(_encoder(), num_ways=3)
        relation.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=1)
        self.assertAdaptedModelMatches(relation, inputs)

    def test_errors(self):
        conv = keras.Sequential([keras.Input((6, 6, 1)),
                                 keras.layers.Conv2D(3, 3)])
        with self.assertRaisesRegex(ValueError, "default relation module"):
            RelationNet(conv, num_ways=3)
        wide = keras.Sequential([keras.Input((10,)), keras.layers.Dense(2)])
        with self.assertRaisesRegex(ValueError, "one score per pair"):
            RelationNet(_encoder(), num_ways=3, relation_module=wide)
