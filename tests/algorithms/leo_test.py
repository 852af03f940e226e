import os

import keras
import numpy as np
import pytest

from keras_meta import LEO
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _features(dims=4, trainable=True):
    model = keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Flatten(),
        keras.layers.Dense(dims, activation="tanh",
                           kernel_initializer=keras.initializers
                           .GlorotUniform(seed=3)),
    ])
    model.trainable = trainable
    return model


def _numpy_decoded_weights(leo, features, labels):
    """The decoded classifier means for the latent means, in NumPy."""
    ew, eb = (v.numpy() for v in leo.encoder.trainable_variables)
    relation = [v.numpy() for v in leo.relation.trainable_variables]
    dw, db = (v.numpy() for v in leo.decoder.trainable_variables)
    codes = features @ ew + eb
    n, d = len(codes), leo.latent_dim
    out = np.zeros((n, n, 2 * d))
    for i in range(n):
        for j in range(n):
            h = np.concatenate([codes[i], codes[j]])
            h = np.maximum(h @ relation[0] + relation[1], 0)
            h = np.maximum(h @ relation[2] + relation[3], 0)
            out[i, j] = h @ relation[4] + relation[5]
    per_example = out.mean(axis=1)
    means = np.stack([per_example[labels == k].mean(0)
                      for k in range(leo.num_ways)])[:, :d]
    return (means @ dw + db)[:, :leo.feature_dim]


class LEOTest(testing.TestCase):
    def test_decoded_weights_match_numpy(self):
        features = _features()
        leo = LEO(features, num_ways=3, latent_dim=2, num_latent_steps=0,
                  num_finetune_steps=0)
        leo.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2)
        expected = []
        for t in range(2):
            s = keras.ops.convert_to_numpy(
                features(inputs["support_inputs"][t]))
            q = keras.ops.convert_to_numpy(features(inputs["query_inputs"][t]))
            # LEO works on unit-norm features.
            s /= np.linalg.norm(s, axis=1, keepdims=True)
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            weights = _numpy_decoded_weights(
                leo, s, inputs["support_labels"][t])
            expected.append(q @ weights.T)
        self.assertAllClose(leo.predict(inputs, verbose=0),
                            np.stack(expected), atol=1e-5, rtol=1e-4)

    def test_one_latent_step_lowers_the_support_loss(self):
        # Same weights, zero or one latent step: scored on the support set
        # itself, the step lowers the loss it descends.
        inputs, _ = testing.toy_episodes(num_tasks=4)
        support_as_query = dict(inputs, query_inputs=inputs["support_inputs"])
        leo = LEO(_features(), num_ways=3, latent_dim=2, num_latent_steps=0,
                  num_finetune_steps=0)
        stepped = LEO(_features(), num_ways=3, latent_dim=2,
                      num_latent_steps=1, num_finetune_steps=0,
                      inner_learning_rate=0.5)
        stepped.set_weights(leo.get_weights())
        losses = []
        for model in (leo, stepped):
            model.compile(loss=LOSS)
            losses.append(model.evaluate(
                support_as_query, inputs["support_labels"], verbose=0,
                return_dict=True)["loss"])
        self.assertLess(losses[1], losses[0] - 1e-4)

    def test_meta_gradient_finite_differences(self):
        # Through both inner loops, the sampled latents and weights (noise
        # fixed by the generator's state), dropout, the KL and L2 terms, and
        # the per-dimension rates. (The encoder penalty stops the gradient
        # through the adapted latents by design, so finite differences of
        # the whole loss would not match it.)
        keras.config.set_floatx("float64")
        inputs, labels = testing.toy_episodes(num_tasks=2, num_shots=2,
                                              dtype="float64")
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        features = keras.Sequential([
            keras.Input((6, 6, 1)), keras.layers.Flatten(dtype="float64"),
            keras.layers.Dense(5, activation="tanh", dtype="float64",
                               kernel_initializer=keras.initializers
                               .GlorotUniform(seed=3)),
        ])
        leo = LEO(features, num_ways=3, latent_dim=2, num_latent_steps=2,
                  num_finetune_steps=1, inner_learning_rate=0.5,
                  finetune_learning_rate=0.1, kl_weight=0.1,
                  encoder_penalty_weight=0.0, l2_weight=0.01,
                  dropout_rate=0.25, seed=7)
        leo.compile(loss=loss)
        # Nonzero biases: zero ones put dropped-out examples exactly on a
        # ReLU's kink, where finite differences are meaningless.
        rng = np.random.default_rng(0)
        for layer in (leo.encoder, leo.relation):
            for variable in layer.trainable_variables:
                if "bias" in variable.path:
                    variable.assign(rng.normal(0.0, 0.3, variable.shape))
        state = [v.numpy() for v in leo.non_trainable_variables]
        gradient = testing.meta_gradient(leo, inputs, labels)
        for variable, value in zip(leo.non_trainable_variables, state):
            variable.assign(value)

        numeric = testing.finite_difference_gradient(
            testing.meta_loss_function(leo, loss, inputs, labels),
            [v.numpy() for v in leo.trainable_variables])
        flat = np.concatenate([g.ravel() for g in gradient])
        flat_numeric = np.concatenate([g.ravel() for g in numeric])
        self.assertLess(np.linalg.norm(flat - flat_numeric)
                        / np.linalg.norm(flat_numeric), 1e-6)

    def test_frozen_feature_extractor(self):
        features = _features(trainable=False)
        leo = LEO(features, num_ways=3, latent_dim=2, num_latent_steps=1,
                  num_finetune_steps=1, seed=1)
        leo.compile(optimizer="adam", loss=LOSS)
        before = [v.numpy() for v in features.weights]
        inputs, labels = testing.toy_episodes(num_tasks=4)
        decoder = leo.decoder.kernel.numpy()
        leo.fit(inputs, labels, batch_size=2, epochs=1, verbose=0)
        for a, b in zip(before, features.weights):
            np.testing.assert_array_equal(a, b.numpy())
        self.assertFalse(np.allclose(decoder, leo.decoder.kernel.numpy()))

    @pytest.mark.slow_on_jax
    def test_basics(self):
        self.run_meta_model_test(
            cls=LEO,
            init_kwargs={"model": _features(), "num_ways": 3,
                         "latent_dim": 2, "num_latent_steps": 1,
                         "num_finetune_steps": 1, "seed": 4},
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )

    def test_weights_carry_the_noise_generator(self):
        # A resumed run must continue LEO's noise stream, which Keras's
        # weight files leave out by default.
        def leo():
            return LEO(_features(), num_ways=3, latent_dim=2, seed=4)

        trained = leo()
        for _ in range(3):
            trained.seed_generator.next()
        path = os.path.join(self.get_temp_dir(), "leo.weights.h5")
        trained.save_weights(path)
        restored = leo()
        self.assertFalse(np.allclose(
            keras.ops.convert_to_numpy(restored.seed_generator.state),
            keras.ops.convert_to_numpy(trained.seed_generator.state)))
        restored.load_weights(path)
        self.assertAllClose(
            keras.ops.convert_to_numpy(restored.seed_generator.state),
            keras.ops.convert_to_numpy(trained.seed_generator.state))

    def test_adapted_model_matches(self):
        leo = LEO(_features(), num_ways=3, latent_dim=2)
        leo.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=1)
        self.assertAdaptedModelMatches(leo, inputs)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "kl_weight"):
            LEO(_features(), num_ways=3, kl_weight=-1.0)
        with self.assertRaisesRegex(ValueError, "latent_dim"):
            LEO(_features(), num_ways=3, latent_dim=0)
