"""Gradient descent on fast weights, the inner loop of MAML and kin."""

from keras import ops

from keras_meta import backend


def gradient_step(weights, gradients, learning_rate):
    """One step `w - learning_rate * g` on each weight.

    Args:
        weights: List of tensors.
        gradients: List of tensors matching `weights`.
        learning_rate: A scalar, or a list matching `weights` of scalars or
            tensors shaped like each weight (per-parameter rates as in
            Meta-SGD).

    Returns:
        The list of updated weights.
    """
    if not isinstance(learning_rate, (list, tuple)):
        learning_rate = [learning_rate] * len(weights)
    return [
        ops.subtract(w, ops.multiply(_as_dtype(rate, w.dtype), g))
        for w, g, rate in zip(weights, gradients, learning_rate)
    ]


def _as_dtype(rate, dtype):
    # A Python number is converted straight to the weight's dtype; casting it
    # would round it to float32 first (0.1 loses 1.5e-8 in float64 models).
    if isinstance(rate, (int, float)):
        return ops.convert_to_tensor(rate, dtype=dtype)
    return ops.cast(rate, dtype)


def gradient_descent(
    loss_fn,
    weights,
    state,
    *,
    learning_rate,
    num_steps,
    first_order=False,
    mask=None,
    trajectory=False,
    step_weights=None,
    remat=False,
):
    """Runs `num_steps` steps of gradient descent on `loss_fn`.

    The one inner loop of the gradient-based algorithms: MAML and its
    first-order form, ANIL and BOIL (through `mask`), Meta-SGD and MAML++'s
    learned rates (through `learning_rate`), MAML++'s multi-step loss
    (through `trajectory`), CAVIA (whose adapted weights are its context),
    Reptile and iMAML (through `first_order`).

    Args:
        loss_fn: Callable `(weights, state) -> (loss, new_state)` with a
            scalar `loss`; `state` carries non-trainable values (BatchNorm
            statistics, seeds) from one step to the next.
        weights: List of tensors to adapt.
        state: Anything `loss_fn` threads through.
        learning_rate: The step size: a scalar, a list with one entry per
            weight (scalars or tensors shaped like the weight), or a
            callable taking the step index (a Python int) and returning
            either (rates that change from step to step, as in MAML++).
        num_steps: Python int, the number of steps (0 returns `weights`).
        first_order: Bool. If `True`, the gradients are treated as constants
            by any enclosing differentiation (first-order MAML), which also
            frees the inner loop's activations early.
        mask: Optional list of bools matching `weights`: only weights marked
            `True` adapt, the others keep their values and no gradient is
            computed for them (ANIL adapts the head alone, BOIL the body).
        trajectory: Bool. If `True`, returns the `(weights, state)` after
            every step, as a list of length `num_steps`.
        step_weights: Optional callable `(step, weights) -> weights` giving
            the weights a step's loss is computed with; it may replace
            weights that do not adapt (MAML++'s per-step BatchNorm scale and
            offset). The returned weights are never passed through it.
        remat: Bool. If `True` (and not `first_order`), each step is
            rematerialized: the backward pass of an enclosing
            differentiation recomputes the step from its input weights
            instead of keeping its activations, so the activations a
            second-order meta-gradient keeps no longer grow with
            `num_steps`, for about one more forward and inner backward
            pass per step.

    Returns:
        `(weights, state)` after the last step, or the list of them after
        each step if `trajectory` is `True`.
    """
    weights = list(weights)
    if mask is None:
        mask = [True] * len(weights)
    elif len(mask) != len(weights):
        raise ValueError(
            f"`mask` has {len(mask)} entries for {len(weights)} weights."
        )
    adapted = [i for i, m in enumerate(mask) if m]

    def merge(fast):
        merged = list(weights)
        for i, value in zip(adapted, fast):
            merged[i] = value
        return merged

    def objective(fast, state, step):
        merged = merge(fast)
        if step_weights is not None:
            merged = step_weights(step, merged)
        return loss_fn(merged, state)

    def one_step(fast, state, step):
        (_, state), gradients = backend.value_and_grad(
            objective, fast, state, step)
        if first_order:
            gradients = [ops.stop_gradient(g) for g in gradients]
        rate = learning_rate(step) if callable(learning_rate) else (
            learning_rate)
        if isinstance(rate, (list, tuple)):
            rate = [rate[i] for i in adapted]
        return gradient_step(fast, gradients, rate), state

    fast = [weights[i] for i in adapted]
    steps = []
    # Where every step computes the same function (no per-step rates or
    # weights), the backend may trace it once for all steps (TensorFlow,
    # with `SHARE_INNER_STEPS` set): a meta-step's tracing then no longer
    # grows with `num_steps`.
    shared_step = None
    rematerialized = remat and not first_order
    if (num_steps > 1 and step_weights is None
            and not callable(learning_rate) and not rematerialized):
        shared_step = backend.step_function(
            lambda fast, state: one_step(fast, state, 0))
    for step in range(num_steps):
        if shared_step is not None:
            fast, state = shared_step(fast, state)
        elif rematerialized:
            fast, state = backend.remat(
                lambda fast, state, step=step: one_step(fast, state, step)
            )(fast, state)
        else:
            fast, state = one_step(fast, state, step)
        steps.append((merge(fast), state))
    if trajectory:
        return steps
    return steps[-1] if steps else (weights, state)
