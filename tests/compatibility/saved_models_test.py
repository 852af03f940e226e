"""`.keras` files saved by keras_meta 0.1.0 (one learner per family, made
by `make_saved_models.py` before the package was rearranged) still load,
predict and adapt as they did."""

import os

import keras
import numpy as np
from absl.testing import parameterized

from keras_meta import testing

HERE = os.path.dirname(os.path.abspath(__file__))
# Saved on TensorFlow; other backends reproduce the predictions within
# float32 rounding. On TensorFlow too since the inductive mode's support
# passes run the fused BatchNormalization kernel (the same function,
# rounded differently: up to 6e-6 apart, 2e-5 relative).
TOLERANCE = 5e-5 if keras.backend.backend() == "tensorflow" else 1e-4


class SavedModelsTest(testing.TestCase):
    @parameterized.named_parameters(
        ("gradient_based", "maml"),
        ("metric_based", "protonet"),
        ("black_box", "cnp"),
    )
    def test_loads_and_predicts_as_saved(self, name):
        stored = np.load(os.path.join(HERE, f"{name}.npz"))
        inputs = {key[len("inputs_"):]: stored[key] for key in stored.files
                  if key.startswith("inputs_")}
        learner = keras.models.load_model(os.path.join(HERE, f"{name}.keras"))
        self.assertAllClose(learner.predict(inputs, verbose=0),
                            stored["predictions"], atol=TOLERANCE,
                            rtol=TOLERANCE)
        adapted = learner.adapt(inputs["support_inputs"][0],
                                inputs["support_labels"][0])
        self.assertAllClose(
            adapted.predict(inputs["query_inputs"][0], verbose=0),
            stored["adapted_predictions"], atol=TOLERANCE, rtol=TOLERANCE)
        # The compile state came back too: evaluation runs.
        logs = learner.evaluate(inputs, stored["labels"], verbose=0,
                                return_dict=True)
        self.assertTrue(np.isfinite(logs["loss"]))
