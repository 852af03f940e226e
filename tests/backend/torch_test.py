"""What is particular to the torch backend: partial derivatives in each
argument of the inner gradient, and what is refused there."""

import keras
import pytest

import keras_meta
from keras_meta import backend
from keras_meta import testing

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch",
                                reason="the torch backend's particulars")


class TorchBackendTest(testing.TestCase):
    def test_gradients_are_partial_in_each_argument(self):
        import torch

        # `b` is computed from `a` (as ProtoMAML's head is from its
        # encoder): the gradient in `a` is still the partial derivative,
        # holding `b` fixed, as `jax.grad` of a function of both gives.
        a = torch.tensor([1.5, -2.0], dtype=torch.float64,
                         requires_grad=True)
        b = 3.0 * a

        def fn(weights):
            x, y = weights
            return (x * y).sum() + (x ** 3).sum(), None

        (loss, _), (grad_a, grad_b) = backend.value_and_grad(fn, [a, b])
        a_np, b_np = a.detach().numpy(), b.detach().numpy()
        self.assertAllClose(grad_a.detach().numpy(), b_np + 3 * a_np ** 2)
        self.assertAllClose(grad_b.detach().numpy(), a_np)
        # The gradient keeps its graph: second derivatives flow back to
        # `a` through both arguments (d/da of sum(grad_a) with b = 3a).
        (second,) = torch.autograd.grad(grad_a.sum(), a)
        self.assertAllClose(second.numpy(), 3.0 + 6 * a_np)

    def test_without_recorded_gradients_no_graph_is_kept(self):
        import torch

        a = torch.tensor([1.0, 2.0], requires_grad=True)
        with torch.no_grad():
            (_, _), (gradient,) = backend.value_and_grad(
                lambda w: ((w[0] ** 2).sum(), None), [a])
        self.assertFalse(gradient.requires_grad)
        self.assertAllClose(gradient.numpy(), [2.0, 4.0])

    def test_jit_compile_is_refused_with_the_alternative(self):
        learner = keras_meta.MAML(testing.tiny_classifier(num_ways=3))
        with self.assertRaisesRegex(ValueError, "torch.compile.*default"):
            learner.compile(loss="mse", jit_compile=True)
        learner.compile(loss="mse")
        self.assertFalse(learner.jit_compile)

    def test_robot_control_is_refused_with_the_alternative(self):
        env = keras_meta.rl.Navigation2D(horizon=5)
        policy = keras_meta.rl.gaussian_mlp_policy(2, 2, hidden_units=(4,))
        with self.assertRaisesRegex(ValueError, "KERAS_BACKEND=tensorflow"):
            keras_meta.rl.MAMLRL(policy, env)

    def test_per_step_normalization_weights_are_contiguous(self):
        # Built from a broadcast array they were strided (Fortran order),
        # and the meta-gradient through torch's batch-norm kernel with a
        # strided scale disagreed with finite differences
        # (maml_plus_plus_test.py's PerStepBatchNormTest is the oracle).
        maml = keras_meta.MAML(testing.tiny_classifier(num_ways=3),
                               num_inner_steps=2, batch_norm="per_step")
        for weight in maml.step_norm_weights:
            self.assertTrue(weight.value.is_contiguous())
