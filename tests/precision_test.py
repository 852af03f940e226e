import keras
import numpy as np
import pytest

import keras_meta
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _meta_gradient(policy="float32", jit_compile=False, loss_scale=None):
    """The second-order meta-gradient of a BatchNorm network, flattened."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(1)
        maml = keras_meta.MAML(testing.tiny_classifier(),
                               inner_learning_rate=0.3, num_inner_steps=2)
        optimizer = keras.optimizers.SGD(1.0)
        if loss_scale is not None:
            optimizer = keras.optimizers.LossScaleOptimizer(
                optimizer, initial_scale=loss_scale)
        maml.compile(optimizer=optimizer, loss=LOSS, jit_compile=jit_compile)
        inputs, labels = testing.toy_episodes(num_tasks=4)
        variables = maml.trainable_variables
        initial = [v.numpy() for v in variables]
        maml.train_on_batch(inputs, labels)
        fast_dtypes = {keras.backend.standardize_dtype(w.dtype)
                       for w in maml.meta_parameters()["weights"]}
        return np.concatenate(
            [(a - v.numpy()).ravel() for a, v in zip(initial, variables)]
        ), fast_dtypes
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _relative_error(actual, expected):
    return np.linalg.norm(actual - expected) / np.linalg.norm(expected)


class PrecisionTest(testing.TestCase):
    @pytest.mark.tensorflow_only
    def test_xla_matches(self):
        # Measured: 1.7e-5 relative (float32 rounding in XLA's fusions).
        reference, _ = _meta_gradient()
        compiled, _ = _meta_gradient(jit_compile=True)
        self.assertLess(_relative_error(compiled, reference), 1e-4)

    def test_mixed_bfloat16_is_finite_and_close(self):
        # bfloat16 keeps 8 bits of mantissa: measured 4.7e-2 relative error
        # of the second-order meta-gradient on TensorFlow.
        reference, _ = _meta_gradient()
        mixed, fast_dtypes = _meta_gradient("mixed_bfloat16")
        self.assertTrue(np.all(np.isfinite(mixed)))
        self.assertLess(_relative_error(mixed, reference), 0.1)
        # The fast weights the inner steps update stay float32; only the
        # layers' computations run in bfloat16.
        self.assertEqual(fast_dtypes, {"float32"})

    def test_mixed_float16_with_loss_scaling(self):
        # Measured on TensorFlow: 4.0e-2 relative error at a loss scale of
        # 2**10. At the default first scale of 2**15 the float16 backward
        # pass overflows and the optimizer skips the step (all zeros here),
        # lowering its scale for the next one, as loss scaling should.
        reference, _ = _meta_gradient()
        mixed, fast_dtypes = _meta_gradient("mixed_float16", loss_scale=2**10)
        self.assertTrue(np.all(np.isfinite(mixed)))
        self.assertLess(_relative_error(mixed, reference), 0.1)
        self.assertEqual(fast_dtypes, {"float32"})
        skipped, _ = _meta_gradient("mixed_float16", loss_scale=2**15)
        self.assertTrue(np.all(skipped == 0))
