"""Plain gradient descent on fast weights, the inner loop of MAML and kin."""

from keras import ops

from keras_meta import backend


def gradient_step(weights, gradients, learning_rate):
    """One step `w - learning_rate * g` on each weight.

    Args:
        weights: List of tensors.
        gradients: List of tensors matching `weights`.
        learning_rate: A scalar, or a list of tensors matching `weights`
            (per-parameter rates as in Meta-SGD).

    Returns:
        The list of updated weights.
    """
    if not isinstance(learning_rate, (list, tuple)):
        learning_rate = [learning_rate] * len(weights)
    return [
        w - _as_dtype(rate, w.dtype) * g
        for w, g, rate in zip(weights, gradients, learning_rate)
    ]


def _as_dtype(rate, dtype):
    # A Python number is converted straight to the weight's dtype; casting it
    # would round it to float32 first (0.1 loses 1.5e-8 in float64 models).
    if isinstance(rate, (int, float)):
        return ops.convert_to_tensor(rate, dtype=dtype)
    return ops.cast(rate, dtype)


def gradient_descent(
    loss_fn, weights, state, *, learning_rate, num_steps, first_order=False
):
    """Runs `num_steps` steps of gradient descent on `loss_fn`.

    Args:
        loss_fn: Callable `(weights, state) -> (loss, new_state)` with a
            scalar `loss`; `state` carries non-trainable values (BatchNorm
            statistics, seeds) from one step to the next.
        weights: List of tensors to adapt.
        state: Anything `loss_fn` threads through.
        learning_rate: A scalar or a list of per-weight rates.
        num_steps: Python int, the number of steps (0 returns `weights`).
        first_order: Bool. If `True`, the gradients are treated as constants
            by any enclosing differentiation (first-order MAML), which also
            frees the inner loop's activations early.

    Returns:
        `(weights, state)` after the last step.
    """
    for _ in range(num_steps):
        (_, state), gradients = backend.value_and_grad(loss_fn, weights, state)
        if first_order:
            gradients = [ops.stop_gradient(g) for g in gradients]
        weights = gradient_step(weights, gradients, learning_rate)
    return weights, state
