import json
import os
import zipfile

import keras
import numpy as np
from absl.testing import parameterized

import keras_meta
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _encoder():
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(4)])


def _cavia_model():
    return keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Flatten(),
                             keras.layers.Dense(3)])


# Every learner, as a user would build it for 3-way toy episodes.
LEARNERS = {
    "maml": lambda: keras_meta.MAML(testing.tiny_classifier()),
    "maml++": lambda: keras_meta.MAML(
        testing.tiny_classifier(), num_inner_steps=2,
        learn_inner_learning_rates=True, multi_step_loss_epochs=2,
        batch_norm="per_step"),
    "anil": lambda: keras_meta.ANIL(testing.tiny_classifier()),
    "boil": lambda: keras_meta.BOIL(testing.tiny_classifier()),
    "metasgd": lambda: keras_meta.MetaSGD(testing.tiny_classifier()),
    "cavia": lambda: keras_meta.CAVIA(_cavia_model(), num_context_params=2),
    "reptile": lambda: keras_meta.Reptile(testing.tiny_classifier()),
    "imaml": lambda: keras_meta.IMAML(testing.tiny_classifier()),
    "protonet": lambda: keras_meta.ProtoNet(_encoder(), num_ways=3),
    "matchingnet": lambda: keras_meta.MatchingNet(_encoder(), num_ways=3),
    "relationnet": lambda: keras_meta.RelationNet(_encoder(), num_ways=3),
    "r2d2": lambda: keras_meta.R2D2(_encoder(), num_ways=3),
    "protomaml": lambda: keras_meta.ProtoMAML(_encoder(), num_ways=3),
    "leo": lambda: keras_meta.LEO(_encoder(), num_ways=3, latent_dim=2),
}


class SafeLoadingTest(testing.TestCase):
    def _saved(self, name="maml"):
        learner = LEARNERS[name]()
        learner.compile(loss=LOSS)
        path = os.path.join(self.get_temp_dir(), f"{name}.keras")
        learner.save(path)
        return learner, path

    @parameterized.named_parameters(*[(n, n) for n in LEARNERS])
    def test_loads_in_safe_mode(self, name):
        learner, path = self._saved(name)
        reloaded = keras.models.load_model(path, safe_mode=True)
        self.assertIsInstance(reloaded, type(learner))
        inputs, _ = testing.toy_episodes(num_tasks=2)
        self.assertAllClose(reloaded.predict(inputs, verbose=0),
                            learner.predict(inputs, verbose=0), 1e-6, 1e-6)
        for a, b in zip(reloaded.weights, learner.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())

    @parameterized.parameters("inductive", "transductive")
    def test_loaded_learner_has_private_copies_of_its_own(self, batch_norm):
        # A model mixing BatchNormalization and Dropout runs private copies
        # (Dropout frozen, BatchNormalization on the fused kernel, on fixed
        # statistics). Loading builds them inside Keras's object-sharing
        # scope, which once made two of them one object: a loaded inductive
        # MAML predicted other values than the learner it was saved from.
        learner = keras_meta.MAML(
            testing.tiny_classifier(dropout=0.0), batch_norm=batch_norm)
        learner.compile(loss=LOSS)
        path = os.path.join(self.get_temp_dir(), "learner.keras")
        learner.save(path)
        reloaded = keras.models.load_model(path)
        network = reloaded._batch_norm_mode.network(reloaded.model)
        copies = [network[key] for key in ("no_noise", "fused",
                                           "fused_no_noise",
                                           "fixed_statistics")
                  if network.get(key) is not None]
        if keras_meta.backend.fused_batch_statistics_call is not None:
            # TensorFlow and torch: fused copies beside the others.
            self.assertGreaterEqual(len(copies), 2)
        self.assertEqual(len({id(copy) for copy in copies}), len(copies))
        inputs, _ = testing.toy_episodes(num_tasks=2)
        self.assertAllClose(reloaded.predict(inputs, verbose=0),
                            learner.predict(inputs, verbose=0), 1e-6, 1e-6)

    def test_truncated_file_fails_cleanly(self):
        _, path = self._saved()
        with open(path, "rb") as f:
            content = f.read()
        with open(path, "wb") as f:
            f.write(content[: len(content) // 2])
        with self.assertRaises((ValueError, zipfile.BadZipFile)):
            keras.models.load_model(path)

    def test_code_smuggled_into_the_config_is_refused(self):
        # A Lambda layer carrying serialized bytecode, put into the wrapped
        # model: safe mode refuses to deserialize it and runs nothing.
        _, path = self._saved()
        with zipfile.ZipFile(path) as archive:
            files = {n: archive.read(n) for n in archive.namelist()}
        config = json.loads(files["config.json"])
        layers = config["config"]["model"]["config"]["layers"]
        marker = os.path.join(self.get_temp_dir(), "executed")
        layers.insert(1, {
            "module": "keras.layers", "class_name": "Lambda",
            "config": {
                "name": "smuggled",
                "function": {
                    "class_name": "__lambda__",
                    "config": {"code": _bytecode_touching(marker),
                               "defaults": None, "closure": None}},
            }})
        files["config.json"] = json.dumps(config).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in files.items():
                archive.writestr(name, content)
        with self.assertRaisesRegex(ValueError, "safe_mode"):
            keras.models.load_model(path)
        self.assertFalse(os.path.exists(marker))


def _bytecode_touching(path):
    import base64
    import marshal

    source = f"lambda x: (open({path!r}, 'w').close(), x)[1]"
    code = compile(source, "<smuggled>", "eval")
    return base64.b64encode(marshal.dumps(code.co_consts[0])).decode()


class PortableCompileConfigTest(testing.TestCase):
    def test_backend_optimizer_modules_become_public(self):
        from keras_meta.algorithms.trainer import _portable_compile_config

        config = {"optimizer": {
            "module": "keras.src.backend.torch.optimizers.torch_adam",
            "class_name": "Adam", "config": {"learning_rate": 0.5},
            "registered_name": "Adam"}, "loss": "mse"}
        portable = _portable_compile_config(config)
        self.assertEqual(portable["optimizer"]["module"], "keras.optimizers")
        self.assertEqual(portable["loss"], "mse")
        optimizer = keras.saving.deserialize_keras_object(
            portable["optimizer"])
        self.assertIsInstance(optimizer, keras.optimizers.Adam)
        self.assertAllClose(float(optimizer.learning_rate), 0.5)
        # The original is left alone; other configs pass through.
        self.assertIn("torch", config["optimizer"]["module"])
        self.assertEqual(_portable_compile_config({"loss": "mse"}),
                         {"loss": "mse"})
