"""Model copies, walks and inspection (`keras_meta.models.surgery`,
`keras_meta.models.inspection`)."""

import keras
import numpy as np

from keras_meta import testing
from keras_meta.models import inspection
from keras_meta.models import surgery


def _mlp():
    return keras.Sequential([
        keras.Input((3,)), keras.layers.Dense(4, name="body"),
        keras.layers.Dense(2, name="head")])


class SurgeryTest(testing.TestCase):
    def test_clone_with_weights_holds_the_given_weights(self):
        model = _mlp()
        weights = [np.full(v.shape, i + 1.0, "float32")
                   for i, v in enumerate(model.trainable_variables)]
        copy = surgery.clone_with_weights(model, weights)
        self.assertIsNot(copy, model)
        for variable, value in zip(copy.trainable_variables, weights):
            self.assertAllClose(variable, value)
        x = np.ones((1, 3), "float32")
        # body: 3 * 1 + 2 = 5 per unit; head: 4 * 5 * 3 + 4 = 64.
        self.assertAllClose(copy.predict(x, verbose=0), [[64.0, 64.0]])
        # The original keeps its own weights.
        self.assertFalse(np.allclose(model.trainable_variables[0].numpy(),
                                     weights[0]))

    def test_clone_refuses_a_wrong_weight_count(self):
        with self.assertRaisesRegex(ValueError, "trainable weights"):
            surgery.clone_with_weights(_mlp(), [np.zeros((3, 4))])

    def test_walk_layers_reaches_nested_models(self):
        inner = _mlp()
        outer = keras.Sequential([keras.Input((3,)), inner,
                                  keras.layers.Dense(1)])
        names = [layer.name for layer in surgery.walk_layers(outer)]
        self.assertIn("body", names)
        self.assertIn("head", names)

    def test_layer_weight_mask(self):
        model = _mlp()
        self.assertEqual(surgery.layer_weight_mask(model, "head", "ANIL"),
                         [False, False, True, True])
        self.assertEqual(surgery.layer_weight_mask(model, -1, "ANIL"),
                         [False, False, True, True])
        with self.assertRaisesRegex(ValueError, "not a layer"):
            surgery.layer_weight_mask(model, "nope", "ANIL")
        with self.assertRaisesRegex(ValueError, "leaving no body"):
            surgery.layer_weight_mask(model, ["body", "head"], "ANIL")

    def test_deserialize_model_creates_weights(self):
        model = _mlp()
        rebuilt = surgery.deserialize_model(
            keras.saving.serialize_keras_object(model))
        self.assertEqual(len(rebuilt.weights), len(model.weights))


class InspectionTest(testing.TestCase):
    def test_convolutional_and_dense(self):
        conv = testing.tiny_classifier(num_ways=3)
        self.assertTrue(inspection.is_convolutional(conv))
        self.assertFalse(inspection.dense_only(conv))
        self.assertFalse(inspection.is_convolutional(_mlp()))
        self.assertTrue(inspection.dense_only(_mlp()))

    def test_activation_elements(self):
        # Dense(4) and Dense(2) outputs per example.
        self.assertEqual(inspection.activation_elements(_mlp()), 6)
