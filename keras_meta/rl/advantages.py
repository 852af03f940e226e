"""Returns, a linear feature baseline and generalized advantage estimation.

Every function takes batches `[tasks, trajectories, horizon]` with a `mask`
that is 1 for the steps a trajectory took and 0 after it ended, and is
written in `keras.ops`, so that it runs inside the compiled training step.
"""

from keras import ops


def _discount_matrix(horizon, factor, dtype):
    # M[t, s] = factor ** (s - t) for s >= t, else 0.
    steps = ops.arange(horizon, dtype=dtype)
    exponent = steps[None, :] - steps[:, None]
    upper = ops.cast(exponent >= 0, dtype)
    return upper * ops.power(
        ops.cast(factor, dtype), ops.maximum(exponent, 0.0))


def discounted_cumsum(values, factor):
    """`out[..., t] = sum_{s >= t} factor ** (s - t) * values[..., s]`."""
    matrix = _discount_matrix(values.shape[-1], factor, values.dtype)
    return ops.einsum("ts,...s->...t", matrix, values)


def baseline_features(observations, mask):
    """The linear feature baseline's features, as in rllab.

    Per step: the observation clipped to [-10, 10], its square, the time
    index `t / 100` and its square and cube, and a constant; zero after a
    trajectory ends.

    Args:
        observations: `[tasks, trajectories, horizon, obs_dim]`.
        mask: `[tasks, trajectories, horizon]`.

    Returns:
        `[tasks, trajectories, horizon, 2 * obs_dim + 4]`.
    """
    dtype = observations.dtype
    obs = ops.clip(observations, -10.0, 10.0)
    horizon = observations.shape[-2]
    time = ops.arange(horizon, dtype=dtype) / 100.0
    time = ops.broadcast_to(time[:, None], ops.shape(obs[..., :1]))
    features = ops.concatenate(
        [obs, ops.square(obs), time, ops.square(time), time ** 3,
         ops.ones_like(time)], axis=-1)
    return features * ops.cast(mask, dtype)[..., None]


def _solve_dtype():
    """float64 where the backend computes it: TensorFlow, and JAX with
    `jax_enable_x64`; JAX's default truncates float64 to float32."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    return "float64"


def fit_linear_baseline(observations, returns, mask, reg_coeff=1e-5):
    """Fits the linear feature baseline per task and predicts its values.

    Solves the ridge problem `(X^T X + reg_coeff * I) w = X^T R` over all
    the steps of a task's trajectories (rllab's `LinearFeatureBaseline`,
    refit per task as in the MAML and ProMP code), then predicts every
    step's value with the same task's `w`.

    The solve runs in float64 (see `_solve_dtype`): on long locomotion
    trajectories the Gram matrix's entries reach about 1e7 against the
    1e-5 ridge, beyond float32's precision. It goes through the Gram
    matrix's eigendecomposition, `w = V diag(1 / (lambda + reg_coeff)) V^T
    X^T R`: the eigenvalues are non-negative, so with a positive ridge the
    coefficients are finite for finite inputs, even for a singular Gram
    matrix (a task whose steps are all alike, or all padding), where a
    linear solver raises and rllab retries with larger ridges.

    Returns:
        Values `[tasks, trajectories, horizon]` in the observations' dtype,
        zero after the end.
    """
    if not reg_coeff > 0:
        raise ValueError(
            f"`reg_coeff` must be positive. Received: {reg_coeff}.")
    dtype = observations.dtype
    work = _solve_dtype()
    features = baseline_features(ops.cast(observations, work), mask)
    tasks = ops.shape(features)[0]
    dim = features.shape[-1]
    flat = ops.reshape(features, (tasks, -1, dim))
    targets = ops.reshape(
        ops.cast(returns, work) * ops.cast(mask, work), (tasks, -1, 1))
    gram = ops.einsum("kni,knj->kij", flat, flat)
    rhs = ops.einsum("kni,knj->kij", flat, targets)
    eigenvalues, vectors = ops.eigh(gram)
    # Rounding can leave a singular matrix's zero eigenvalues slightly
    # negative.
    eigenvalues = ops.maximum(eigenvalues, 0.0)
    projected = ops.einsum("kij,kio->kjo", vectors, rhs)
    coefficients = ops.einsum(
        "kij,kjo->kio", vectors,
        projected / (eigenvalues + reg_coeff)[..., None])
    values = ops.einsum("ktsi,kio->ktso", features, coefficients)
    return ops.cast(values[..., 0], dtype)


def generalized_advantages(rewards, values, mask, discount, gae_lambda):
    """Generalized advantage estimation (Schulman et al., 2016).

    `delta_t = r_t + discount * V_{t+1} - V_t` (with `V` zero after a
    trajectory ends), `A_t = sum_l (discount * gae_lambda) ** l *
    delta_{t+l}`. With `gae_lambda=1` this is the discounted return minus
    the baseline.
    """
    mask = ops.cast(mask, rewards.dtype)
    values = values * mask
    next_values = ops.concatenate(
        [values[..., 1:], ops.zeros_like(values[..., :1])], axis=-1)
    deltas = (rewards + discount * next_values - values) * mask
    return discounted_cumsum(deltas, discount * gae_lambda) * mask


def normalize_per_task(advantages, mask, epsilon=1e-8):
    """Centres and scales advantages over each task's valid steps."""
    mask = ops.cast(mask, advantages.dtype)
    axes = tuple(range(1, len(advantages.shape)))
    count = ops.maximum(ops.sum(mask, axis=axes, keepdims=True), 1.0)
    mean = ops.sum(advantages * mask, axis=axes, keepdims=True) / count
    variance = ops.sum(
        ops.square(advantages - mean) * mask, axis=axes,
        keepdims=True) / count
    return (advantages - mean) / (ops.sqrt(variance) + epsilon) * mask
