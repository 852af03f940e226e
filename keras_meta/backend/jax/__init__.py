"""JAX implementations of the backend functions.

This module is the only place in keras_meta that calls `jax.grad`,
`jax.vmap` or `jax.lax.map`.
"""

import contextlib

import jax

from keras_meta.backend.common import task_mapping_override


@contextlib.contextmanager
def exact_moments():
    """No-op: Keras's JAX backend computes moments with `jnp.var`, whose
    derivatives of every order are exact (checked by the finite-difference
    tests)."""
    yield


def value_and_grad(fn, weights, *args):
    """Evaluates `fn(weights, *args)` and its gradient with respect to `weights`.

    `fn` returns `(loss, aux)`. Differentiable to any order, so a
    meta-gradient taken through it is exact.

    Returns:
        `((loss, aux), gradients)`, with `gradients` a list matching
        `weights`.
    """

    def objective(weights):
        return fn(weights, *args)

    (loss, aux), gradients = jax.value_and_grad(objective, has_aux=True)(
        list(weights)
    )
    return (loss, aux), list(gradients)


def step_function(fn):
    """`fn`, one inner gradient step, as it is: under `jax.jit` each step
    is traced in turn (see the TensorFlow backend's `step_function`)."""
    return fn


def remat(fn):
    """`fn` recomputed in the backward pass instead of keeping its
    intermediate values (`jax.checkpoint`; closures are differentiated
    as arguments are)."""
    return jax.checkpoint(fn)


def read_value(variable):
    """The current value of a Keras variable (inside Keras's stateless
    scopes, the value being traced)."""
    return variable.value


def task_mapping(vectorize=False):
    """How tasks are mapped: `"vmap"` or `"map"`.

    Set `KERAS_META_TASK_MAPPING` to `vmap` or `map` to choose; the default,
    `auto`, vectorizes with `jax.vmap` on accelerators, where it is by far
    the fastest, and on CPU where the caller says the per-task function
    vectorizes well (`vectorize=True`: a model of dense and elementwise
    layers, whose per-task weights become batched matrix products). Other
    models use `jax.lax.map` on CPU, where `vmap` turns per-task convolution
    weights into grouped convolutions that run tens of times slower than a
    loop.
    """
    choice = task_mapping_override()
    if choice is not None:
        return choice
    if vectorize or jax.default_backend() != "cpu":
        return "vmap"
    return "map"


def map_tasks(fn, elements, output_dtypes=None, vectorize=False):
    """Applies `fn` to each task of a meta-batch and stacks the results.

    Inside the jitted training step this is `jax.vmap` or `jax.lax.map`;
    see `task_mapping()`. Neither unrolls a Python loop over tasks.
    """
    del output_dtypes  # JAX infers output structure and dtypes.
    if task_mapping(vectorize) == "vmap":
        return jax.vmap(fn)(elements)
    return jax.lax.map(fn, elements)


def check_label_range(labels, num_classes, message):
    """No check inside a jitted JAX step: labels are checked on the first
    episode only (JAX has no in-graph assertion that stops a step).
    Returns `labels`."""
    del num_classes, message
    return labels


def per_replica_logs(logs):
    """Logs as Keras's JAX trainer reduces them: unchanged."""
    return logs


def replica_index():
    """This replica's place among those that share the global batch: 0
    (Keras's JAX trainer runs one program on the whole global batch)."""
    return 0


def check_even_split(data):
    """Nothing to check: Keras's JAX trainer runs one program on the whole
    global batch."""
    del data


def num_replicas():
    """The number of replicas that share the current global batch.

    Keras's JAX trainer shards batches itself under `keras.distribution`;
    losses are not rescaled per replica, so this is 1.
    """
    return 1


def implicit_solution(solutions, weights, loss_fn, args, solve):
    """Per-task inner solutions, with implicit-function gradients.

    See the TensorFlow version for the contract. `args` must hold every
    tensor `loss_fn` uses: `jax.custom_vjp` cannot differentiate values
    captured from an enclosing trace.
    """
    import numpy as np

    def zero_cotangent(value):
        if jax.numpy.issubdtype(value.dtype, jax.numpy.inexact):
            return jax.numpy.zeros_like(value)
        return np.zeros(value.shape, dtype=jax.dtypes.float0)

    @jax.custom_vjp
    def attach(weights, solutions, args):
        del weights, args
        return solutions

    def forward(weights, solutions, args):
        return solutions, (solutions, args)

    def task_gradient(task):
        solution, upstream, task_args = task

        def hvp(vectors):
            def gradient(point):
                return value_and_grad(loss_fn, point, *task_args)[1]

            return list(jax.jvp(gradient, (list(solution),),
                                (list(vectors),))[1])

        return solve(hvp, list(upstream))

    def backward(residuals, upstream):
        solutions, args = residuals
        per_task = map_tasks(task_gradient, (solutions, list(upstream), args))
        return (
            [g.sum(axis=0) for g in per_task],
            [jax.numpy.zeros_like(s) for s in solutions],
            jax.tree_util.tree_map(zero_cotangent, args),
        )

    attach.defvjp(forward, backward)
    solutions = [jax.lax.stop_gradient(s) for s in solutions]
    return list(attach(list(weights), solutions, tuple(args)))


def loss_and_gradients(fn, variables):
    """Not available on JAX, whose trainer is stateless (see the TensorFlow
    version). `keras_meta.rl` checks the backend before it gets here."""
    raise NotImplementedError(
        "`loss_and_gradients` needs the TensorFlow backend: JAX trains "
        "through a stateless `train_step`.")


def compiled(fn):
    """`fn` unchanged: JAX functions that read Keras variables are run
    eagerly."""
    return fn


def scan_steps(step_fn, num_steps):
    """A `train_function` for Keras's JAX trainer that runs `num_steps`
    training steps as one compiled `jax.lax.scan`.

    Keras's own multi-step function calls the jitted step once per batch
    from Python; for small models that dispatch costs as much as the step.
    This one stacks the execution's batches and runs them in a single
    program, while Python gathers the next execution's batches (JAX
    dispatches asynchronously). The steps are the same steps in the same
    order, and the logs are the last step's, as Keras's. An execution with
    fewer batches (the end of a finite dataset) or batches of different
    shapes runs step by step.

    Args:
        step_fn: `train_step(state, data) -> (logs, state)`.
        num_steps: Int, the model's `steps_per_execution`.
    """
    import numpy as np

    one_step = jax.jit(step_fn, donate_argnums=0)

    def scanned(state, batches):
        def body(state, data):
            logs, state = step_fn(state, data)
            return state, logs

        state, logs = jax.lax.scan(body, state, batches)
        return jax.tree_util.tree_map(lambda value: value[-1], logs), state

    scanned = jax.jit(scanned, donate_argnums=0)

    def shapes(batch):
        leaves, structure = jax.tree_util.tree_flatten(batch)
        return structure, [(np.shape(leaf), np.asarray(leaf).dtype)
                           for leaf in leaves]

    def train_function(state, iterator):
        batches = [next(iterator)]
        try:
            for _ in range(num_steps - 1):
                batches.append(next(iterator))
        except StopIteration:
            pass
        first = shapes(batches[0])
        if len(batches) == num_steps and all(
                shapes(batch) == first for batch in batches[1:]):
            stacked = jax.tree_util.tree_map(
                lambda *values: np.stack(values), *batches)
            return scanned(state, stacked)
        logs = None
        for batch in batches:
            logs, state = one_step(state, batch)
        return logs, state

    return train_function
