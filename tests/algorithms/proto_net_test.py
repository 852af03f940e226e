import keras
import numpy as np
from absl.testing import parameterized

from keras_meta import ProtoNet
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _encoder(batch_norm=False):
    layers = [keras.Input((6, 6, 1)), keras.layers.Flatten(),
              keras.layers.Dense(8, kernel_initializer=keras.initializers
                                 .GlorotUniform(seed=1))]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    return keras.Sequential(layers)


def _numpy_logits(encoder, inputs, num_ways, distance, scale=10.0):
    logits = []
    for t in range(len(inputs["support_inputs"])):
        support = keras.ops.convert_to_numpy(
            encoder(inputs["support_inputs"][t]))
        query = keras.ops.convert_to_numpy(encoder(inputs["query_inputs"][t]))
        labels = inputs["support_labels"][t]
        prototypes = np.stack([support[labels == c].mean(0)
                               for c in range(num_ways)])
        if distance == "cosine":
            p = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
            q = query / np.linalg.norm(query, axis=1, keepdims=True)
            logits.append(scale * q @ p.T)
        else:
            logits.append(-((query[:, None] - prototypes[None]) ** 2).sum(-1))
    return np.stack(logits)


class ProtoNetTest(testing.TestCase):
    @parameterized.named_parameters(
        ("euclidean", "squared_euclidean"), ("cosine", "cosine"))
    def test_logits_match_numpy(self, distance):
        encoder = _encoder()
        protonet = ProtoNet(encoder, num_ways=3, distance=distance)
        protonet.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=3, num_shots=3)
        self.assertAllClose(
            protonet.predict(inputs, verbose=0),
            _numpy_logits(encoder, inputs, 3, distance),
            atol=1e-4, rtol=1e-4)

    @parameterized.named_parameters(
        ("euclidean", "squared_euclidean", False),
        ("cosine_batch_norm", "cosine", True))
    def test_basics(self, distance, batch_norm):
        self.run_meta_model_test(
            cls=ProtoNet,
            init_kwargs={"model": _encoder(batch_norm), "num_ways": 3,
                         "distance": distance},
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )

    def test_adapted_model_predicts_the_same_classes(self):
        protonet = ProtoNet(_encoder(), num_ways=3)
        protonet.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2)
        expected = protonet.predict(inputs, verbose=0)
        for t in range(2):
            learner = protonet.adapt(inputs["support_inputs"][t],
                                     inputs["support_labels"][t])
            logits = learner.predict(inputs["query_inputs"][t], verbose=0)
            # Logits differ by -|x|^2 per example: equal softmax.
            self.assertAllClose(keras.ops.softmax(logits),
                                keras.ops.softmax(expected[t]),
                                atol=1e-5, rtol=1e-4)

    def test_training_learns(self):
        def noisy(seed, num_tasks=4):
            # Class prototypes live in the first pixels only; the rest is
            # loud noise the encoder must learn to ignore.
            inputs, labels = testing.toy_episodes(num_tasks=num_tasks,
                                                  seed=seed)
            rng = np.random.default_rng(seed + 1000)
            for key in ("support_inputs", "query_inputs"):
                x = inputs[key]
                x[..., 2:, :, :] = 3.0 * rng.normal(size=x[..., 2:, :, :].shape)
            return inputs, labels

        protonet = ProtoNet(_encoder(), num_ways=3)
        protonet.compile(optimizer=keras.optimizers.Adam(1e-2), loss=LOSS)
        test = noisy(99, num_tasks=16)
        before = protonet.evaluate(*test, verbose=0, return_dict=True)["loss"]
        for seed in range(40):
            protonet.train_on_batch(*noisy(seed))
        after = protonet.evaluate(*test, verbose=0, return_dict=True)["loss"]
        self.assertLess(after, 0.7 * before)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "num_ways"):
            ProtoNet(_encoder(), num_ways=0)
        with self.assertRaisesRegex(ValueError, "distance"):
            ProtoNet(_encoder(), num_ways=3, distance="manhattan")
