"""Adam on fast weights: Reptile's inner optimizer."""

from keras import ops

from keras_meta import backend


def adam(loss_fn, weights, state, *, learning_rate, num_steps, beta_1=0.0,
         beta_2=0.999, epsilon=1e-8):
    """Runs `num_steps` steps of Adam on `loss_fn`, first order.

    The moment estimates start at zero for every call (every task) and are
    bias-corrected, as in Kingma and Ba (2015). With the default
    `beta_1=0` (the Reptile reference code's choice) the step is
    `learning_rate * g / (sqrt(v_hat) + epsilon)`, `v_hat` the corrected
    running mean of squared gradients. The gradients are treated as
    constants by any enclosing differentiation: this is an inner loop for
    first-order learners.

    Args:
        loss_fn: Callable `(weights, state) -> (loss, new_state)`, as for
            `keras_meta.inner.gradient_descent`.
        weights: List of tensors to adapt.
        state: Anything `loss_fn` threads through.
        learning_rate: Float, the step size.
        num_steps: Python int, the number of steps (0 returns `weights`).
        beta_1: Float, decay of the first moment. Defaults to `0.0`.
        beta_2: Float, decay of the second moment. Defaults to `0.999`.
        epsilon: Float added to the denominator. Defaults to `1e-8`.

    Returns:
        `(weights, state)` after the last step.
    """
    weights = [ops.stop_gradient(w) for w in weights]
    first = [ops.zeros_like(w) for w in weights]
    second = [ops.zeros_like(w) for w in weights]
    for step in range(1, num_steps + 1):
        (_, state), gradients = backend.value_and_grad(
            loss_fn, weights, state)
        gradients = [ops.stop_gradient(g) for g in gradients]
        first = [beta_1 * m + (1.0 - beta_1) * g
                 for m, g in zip(first, gradients)]
        second = [beta_2 * v + (1.0 - beta_2) * ops.square(g)
                  for v, g in zip(second, gradients)]
        # Bias corrections, Python floats: the step count is static.
        correction_1 = 1.0 - beta_1 ** step
        correction_2 = 1.0 - beta_2 ** step
        weights = [
            w - ops.cast(learning_rate, w.dtype) * (m / correction_1)
            / (ops.sqrt(v / correction_2) + ops.cast(epsilon, w.dtype))
            for w, m, v in zip(weights, first, second)
        ]
    return weights, state
