"""PyTorch implementations of the backend functions.

This module is the only place in keras_meta that calls
`torch.autograd.grad`. Keras's torch backend runs eagerly (or under
`torch.compile`), so tasks are mapped by a Python loop, labels are checked
on every batch, and inner-loop gradients are taken with
`create_graph=True` whenever the outer step records gradients: the
meta-gradient through them is exact to every order.
"""

import contextlib

import torch
from keras import ops
from keras import tree

from keras_meta.backend.common import task_mapping_override


@contextlib.contextmanager
def exact_moments():
    """No-op: Keras's torch backend computes the variance as
    `mean(x**2) - mean(x)**2` with gradients flowing through both terms, so
    its derivatives of every order are exact (checked by the
    finite-difference tests)."""
    yield


def fused_batch_statistics_call(layer):
    """A `call` for the BatchNormalization `layer` of a private copy that
    normalizes with batch statistics through PyTorch's native kernel.

    In training, a layer that normalizes over its inputs' last axis or
    axis 1, with no mask, runs `torch.nn.functional.batch_norm` (on the
    channels moved to axis 1) instead of Keras's composite ops: one
    kernel forward, one backward, and PyTorch's exact formula for the
    gradient of that gradient (second-order meta-gradients), the kernels learn2learn's
    `BatchNorm2d` runs. The moving statistics are updated as Keras does
    (the biased batch variance), without a gradient through the update:
    use this only where the updated statistics are discarded. Every other
    call runs the layer's own `call`.
    """
    import torch.nn.functional as F

    call = layer.call

    def fused_call(inputs, training=None, mask=None):
        inputs = torch.as_tensor(inputs)
        axis = layer.axis % inputs.ndim if isinstance(
            layer.axis, int) and inputs.ndim >= 2 else None
        if (not (training and layer.trainable) or mask is not None
                or getattr(layer, "renorm", False)
                or axis not in (1, inputs.ndim - 1)
                or not inputs.is_floating_point()):
            return call(inputs, training=training, mask=mask)
        channels = inputs.shape[axis]
        moved = torch.movedim(inputs, axis, 1)
        # With momentum 1 the kernel writes the batch mean and unbiased
        # variance into these buffers, which no gradient reaches.
        mean = torch.zeros(channels, dtype=inputs.dtype,
                           device=inputs.device)
        variance = torch.zeros_like(mean)
        outputs = F.batch_norm(
            moved, mean, variance,
            weight=layer.gamma.value.contiguous() if layer.scale else None,
            bias=layer.beta.value.contiguous() if layer.center else None,
            training=True, momentum=1.0, eps=layer.epsilon)
        count = inputs.numel() // channels
        variance = variance * ((count - 1) / max(count, 1))
        momentum = layer.momentum
        for moving, batch in ((layer.moving_mean, mean),
                              (layer.moving_variance, variance)):
            batch = batch.to(moving.value.dtype)
            moving.assign(moving.value * momentum + batch * (1.0 - momentum))
        return ops.cast(torch.movedim(outputs, 1, axis), layer.compute_dtype)

    return fused_call


def value_and_grad(fn, weights, *args):
    """Evaluates `fn(weights, *args)` and its gradient with respect to
    `weights`.

    `fn` returns `(loss, aux)`. The gradient keeps its graph
    (`create_graph=True`) when gradients are being recorded around the
    call, so a meta-gradient taken through it is exact; under
    `torch.no_grad()` (evaluation, prediction) the inner gradient is still
    taken, without a graph. Weights that do not require gradients (a
    first-order learner's `stop_gradient`-ed weights) are differentiated
    as fresh leaves; the others through a view of each, so that each
    gradient is the partial derivative in its own argument, as on the other
    backends (a weight computed from another, ProtoMAML's head from the
    encoder's prototypes, would otherwise pass its gradient on to it).

    Returns:
        `((loss, aux), gradients)`, with `gradients` a list matching
        `weights` (zeros where the loss does not depend on a weight).
    """
    outer = torch.is_grad_enabled()
    with torch.enable_grad():
        leaves = [
            w.view_as(w) if w.requires_grad
            else w.detach().requires_grad_(True)
            for w in (torch.as_tensor(w) for w in weights)
        ]
        loss, aux = fn(leaves, *args)
        gradients = torch.autograd.grad(
            loss, leaves, create_graph=outer, allow_unused=True)
    gradients = [
        torch.zeros_like(w) if g is None else g
        for g, w in zip(gradients, leaves)
    ]
    if not outer:
        loss = loss.detach()
        aux = tree.map_structure(
            lambda a: a.detach() if isinstance(a, torch.Tensor) else a, aux)
        gradients = [g.detach() for g in gradients]
    return (loss, aux), gradients


def step_function(fn):
    """`fn`, one inner gradient step, as it is: torch runs each step
    eagerly, so there is no tracing to share (see the TensorFlow backend's
    `step_function`)."""
    return fn


def remat(fn):
    """`fn` recomputed in the backward pass instead of keeping its
    intermediate values (`torch.utils.checkpoint`, non-reentrant, which
    lets `fn` take gradients itself). Where no gradient is recorded, `fn`
    runs as it is."""
    from torch.utils import checkpoint

    def wrapped(*args):
        if not torch.is_grad_enabled():
            return fn(*args)
        return checkpoint.checkpoint(fn, *args, use_reentrant=False)

    return wrapped


def read_value(variable):
    """The current value of a Keras variable (inside Keras's stateless
    scopes, the value given to the scope)."""
    return variable.value


def task_mapping(vectorize=False):
    """How tasks are mapped: always `"map"`, a Python loop over tasks.

    `torch.func.vmap` cannot batch `torch.autograd.grad`, which the inner
    loops call; `KERAS_META_TASK_MAPPING=vmap` is refused with that
    reason.
    """
    del vectorize
    if task_mapping_override() == "vmap":
        raise ValueError(
            "`KERAS_META_TASK_MAPPING=vmap` is not available on the torch "
            "backend: `torch.func.vmap` cannot batch the "
            "`torch.autograd.grad` calls of the inner loop. Unset it (or "
            "set `map`) to loop over tasks, or use the JAX backend for "
            "vectorized tasks.")
    return "map"


def map_tasks(fn, elements, output_dtypes=None, vectorize=False):
    """Applies `fn` to each task of a meta-batch and stacks the results
    (a Python loop: the torch backend runs eagerly)."""
    del output_dtypes
    task_mapping(vectorize)
    flat = [e for e in tree.flatten(elements) if e is not None]
    outputs = []
    for index in range(flat[0].shape[0]):
        task = tree.map_structure(
            lambda e: None if e is None else e[index], elements,
            none_is_leaf=True)
        outputs.append(fn(task))
    return tree.map_structure(lambda *values: torch.stack(values), *outputs)


def check_label_range(labels, num_classes, message):
    """`labels`, after checking that `0 <= labels < num_classes` (every
    batch: the step runs eagerly). Raises `ValueError` with `message`
    naming the offending minimum and maximum otherwise."""
    values = torch.as_tensor(labels)
    if values.numel():
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{message} Received labels in [min, max]: [{low}, {high}].")
    return labels


def per_replica_logs(logs):
    """Logs as Keras's torch trainer reduces them: unchanged."""
    return logs


def replica_index():
    """This replica's place among those that share the global batch: 0
    (Keras's torch trainer runs on one device)."""
    return 0


def check_even_split(data):
    """Nothing to check: Keras's torch trainer runs on one device."""
    del data


def num_replicas():
    """The number of replicas that share the current global batch: 1
    (Keras's torch trainer runs on one device)."""
    return 1


class _ImplicitGradient(torch.autograd.Function):
    """Returns the solutions unchanged; their gradient with respect to the
    weights is computed by `implicit_solution`'s `backward`."""

    @staticmethod
    def forward(ctx, backward, count, *tensors):
        ctx.backward_fn = backward
        ctx.count = count
        solutions = tensors[count:]
        return tuple(s.clone() for s in solutions)

    @staticmethod
    def backward(ctx, *upstream):
        gradients = ctx.backward_fn(list(upstream))
        return (None, None, *gradients,
                *[None] * len(upstream))


def implicit_solution(solutions, weights, loss_fn, args, solve):
    """Per-task inner solutions, with implicit-function gradients.

    See the TensorFlow version for the contract. The backward pass loops
    over tasks and takes each task's Hessian-vector products with
    `torch.autograd.grad` at its solution.
    """
    solutions = [s.detach() for s in solutions]
    args = tuple(args)

    def task_gradient(task):
        solution, upstream, task_args = task

        def hvp(vectors):
            with torch.enable_grad():
                point = [s.detach().requires_grad_(True) for s in solution]
                loss, _ = loss_fn(point, *task_args)
                gradients = torch.autograd.grad(
                    loss, point, create_graph=True, allow_unused=True)
                dot = sum(
                    (g * v.detach()).sum() for g, v in zip(gradients, vectors)
                    if g is not None)
                second = torch.autograd.grad(dot, point, allow_unused=True)
            return [torch.zeros_like(p) if s is None else s
                    for s, p in zip(second, point)]

        return [g.detach() for g in solve(hvp, list(upstream))]

    def backward(upstream):
        upstream = [torch.zeros_like(s) if u is None else u
                    for u, s in zip(upstream, solutions)]
        per_task = map_tasks(task_gradient, (solutions, upstream, args))
        return [g.sum(dim=0) for g in per_task]

    weights = [torch.as_tensor(w) for w in weights]
    return list(_ImplicitGradient.apply(
        backward, len(weights), *weights, *solutions))


def loss_and_gradients(fn, variables):
    """Not available on torch: `keras_meta.rl` trains on TensorFlow and
    checks the backend before it gets here."""
    raise NotImplementedError(
        "`loss_and_gradients` needs the TensorFlow backend: `keras_meta.rl` "
        "trains on TensorFlow only.")


def compiled(fn):
    """`fn` unchanged: the torch backend runs eagerly."""
    return fn
