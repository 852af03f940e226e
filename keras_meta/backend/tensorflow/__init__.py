"""TensorFlow implementations of the backend functions.

This module is the only place in keras_meta that uses `tf.GradientTape`,
`tf.map_fn` or `tf.distribute`.
"""

import contextlib
import threading

import tensorflow as tf

from keras_meta.backend.common import task_mapping_override

_moments_lock = threading.RLock()
_moments_depth = 0
_stock_moments = None

# Tests switch this off to show that the finite-difference checks catch the
# stock moments' second-order error; nothing else should touch it.
_USE_EXACT_MOMENTS = True


def _moments(x, axes, shift=None, keepdims=False, name=None):
    """`tf.nn.moments` with gradients flowing through the mean everywhere.

    `tf.nn.moments` computes the variance around `stop_gradient(mean)`. That
    leaves first derivatives unchanged (the deviations sum to zero) but drops
    terms from second derivatives, so the meta-gradient of any network with
    a BatchNormalization, LayerNormalization or GroupNormalization layer is
    wrong by a few percent. This version is equal in value and exact in
    every derivative.
    """
    del shift  # Only affects numerical stability in the stock version.
    with tf.name_scope(name or "exact_moments"):
        compute_x = tf.cast(x, tf.float32) if x.dtype == tf.float16 else x
        mean = tf.reduce_mean(compute_x, axes, keepdims=True)
        variance = tf.reduce_mean(
            tf.math.squared_difference(compute_x, mean), axes, keepdims=True
        )
        if not keepdims:
            mean = tf.squeeze(mean, axes)
            variance = tf.squeeze(variance, axes)
        if x.dtype == tf.float16:
            mean = tf.cast(mean, tf.float16)
            variance = tf.cast(variance, tf.float16)
        return mean, variance


@contextlib.contextmanager
def exact_moments():
    """Context in which normalization layers have exact second derivatives.

    Keras's TensorFlow backend computes the moments of BatchNormalization,
    LayerNormalization and GroupNormalization through the public
    `tf.nn.moments`; inside this context that name points to an exact
    version (see `_moments`). The values computed are unchanged. Nesting
    and concurrent use from several threads are safe.
    """
    global _moments_depth, _stock_moments
    if not _USE_EXACT_MOMENTS:
        yield
        return
    with _moments_lock:
        if _moments_depth == 0:
            _stock_moments = tf.nn.moments
            tf.nn.moments = _moments
        _moments_depth += 1
    try:
        yield
    finally:
        with _moments_lock:
            _moments_depth -= 1
            if _moments_depth == 0:
                tf.nn.moments = _stock_moments


# Whether the fused BatchNormalization's gradient has its own gradient in
# closed form (`_batch_norm_gradient_gradient`) instead of TensorFlow's
# registered one, which differentiates a composite copy of the gradient
# under a tape (the same values; `benchmarks/conv_step.py --variants
# stock_batch_norm_gradient` times the difference).
CLOSED_FORM_BATCH_NORM_GRADIENT = True


def _fused_batch_norm(inputs, scale, offset, epsilon):
    """`FusedBatchNormV3` in training (NHWC) on float32 `scale` and
    `offset`: the normalized `inputs`."""
    empty = tf.constant([], tf.float32)

    def forward(inputs, scale, offset):
        return tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset, mean=empty,
            variance=empty, epsilon=epsilon, exponential_avg_factor=1.0,
            data_format="NHWC", is_training=True)

    if not CLOSED_FORM_BATCH_NORM_GRADIENT:
        return forward(inputs, scale, offset)[0]

    @tf.custom_gradient
    def normalize(inputs, scale, offset):
        outputs, _, _, reserve_1, reserve_2, reserve_3 = forward(
            inputs, scale, offset)

        def gradient(d_outputs):
            return _batch_norm_gradient(
                d_outputs, inputs, scale, reserve_1, reserve_2, reserve_3,
                epsilon)

        return outputs, gradient

    return normalize(inputs, scale, offset)


def _batch_norm_gradient(d_outputs, inputs, scale, reserve_1, reserve_2,
                         reserve_3, epsilon):
    """`FusedBatchNormGradV3` in training, whose own gradient is
    `_batch_norm_gradient_gradient`."""

    @tf.custom_gradient
    def gradient(d_outputs, inputs, scale):
        d_inputs, d_scale, d_offset, *_ = tf.raw_ops.FusedBatchNormGradV3(
            y_backprop=d_outputs, x=inputs, scale=scale,
            reserve_space_1=reserve_1, reserve_space_2=reserve_2,
            reserve_space_3=reserve_3, epsilon=epsilon, data_format="NHWC",
            is_training=True)

        def second(dd_inputs, dd_scale, dd_offset):
            return _batch_norm_gradient_gradient(
                d_outputs, inputs, scale, dd_inputs, dd_scale, dd_offset,
                epsilon)

        return (d_inputs, d_scale, d_offset), second

    return gradient(d_outputs, inputs, scale)


def _batch_norm_gradient_gradient(g, x, scale, upstream_x, upstream_scale,
                                  upstream_offset, epsilon):
    """The gradient of batch normalization's gradient in training.

    Batch normalization over the first three axes of `x` (per channel, over
    its N values: mean `mu`, biased variance `v`, `r = (v + epsilon)^-1/2`,
    centred `u = x - mu`) has, for the upstream gradient `g`, the gradients
    `dx = scale r (g - mean(g) - r^2 u mean(g u))`,
    `dscale = N r mean(g u)` and `doffset = N mean(g)`. For upstream
    gradients `A`, `b` and `c` of those three (`None` for zeros), this
    returns the gradients of `J = sum(A dx) + b dscale + c doffset` with
    respect to `g`, `x` and `scale` in closed form: per-channel
    coefficients from seven means, then three elementwise combinations.
    TensorFlow's registered gradient differentiates a composite copy of
    the gradient under a tape instead.
    """
    # float16 and bfloat16 inputs are computed in float32, as the kernels
    # compute them.
    dtypes = g.dtype, x.dtype
    g, x = tf.cast(g, scale.dtype), tf.cast(x, scale.dtype)
    if upstream_x is not None:
        upstream_x = tf.cast(upstream_x, scale.dtype)
    axes = tf.constant([0, 1, 2])
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)
    centred = x - tf.reduce_mean(x, axes)
    r = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axes) + epsilon)
    r3 = r * r * r
    mean_g = tf.reduce_mean(g, axes)
    mean_gu = tf.reduce_mean(g * centred, axes)
    scale_r = scale * r
    scale_r3 = scale * r3
    zero = tf.zeros_like(scale)
    if upstream_x is None:
        mean_au = covariance_ag = zero
    else:
        upstream_x_centred = upstream_x - tf.reduce_mean(upstream_x, axes)
        mean_au = tf.reduce_mean(upstream_x_centred * centred, axes)
        covariance_ag = tf.reduce_mean(upstream_x_centred * g, axes)
    b = zero if upstream_scale is None else upstream_scale
    c = zero if upstream_offset is None else upstream_offset
    # J / N = scale r cov(A, g) - scale r^3 mean(g u) mean(A u)
    #         + b r mean(g u) + c mean(g), in which only r and u depend
    # on x (dr/du = -r^3 u / N, and x's gradient is u's, centred).
    coefficient_u = b * r - scale_r3 * mean_au
    d_r = (scale * covariance_ag - 3.0 * scale_r * r * mean_gu * mean_au
           + b * mean_gu)
    d_g = coefficient_u * centred + c
    d_x = coefficient_u * (g - mean_g) - (r3 * d_r) * centred
    if upstream_x is not None:
        d_g += scale_r * upstream_x_centred
        d_x -= (scale_r3 * mean_gu) * upstream_x_centred
    d_scale = count * (r * covariance_ag - r3 * mean_gu * mean_au)
    return tf.cast(d_g, dtypes[0]), tf.cast(d_x, dtypes[1]), d_scale


def fused_batch_statistics_call(layer):
    """A `call` for the BatchNormalization `layer` of a private copy that
    normalizes with batch statistics through TensorFlow's fused kernel.

    In training, a layer that normalizes 4-D float32 (or float16/bfloat16)
    inputs over their last axis, with no mask and no renormalization, runs
    `FusedBatchNormV3` (oneDNN on CPU, cuDNN on GPU). Its gradient is one
    fused kernel too, and the gradient of that gradient (second-order
    meta-gradients) has a closed form (`_batch_norm_gradient_gradient`):
    a Conv-4 MAML step with batch statistics takes about a quarter less
    time than through Keras's composite ops. The values are the same to
    rounding. The moving statistics are left as they are: use this only
    where the updated statistics would be discarded. Every other call
    (inference, float64, other ranks or axes) runs the layer's own `call`.
    """
    call = layer.call
    axis = layer.axis if isinstance(layer.axis, int) else None

    def fused_call(inputs, training=None, mask=None):
        inputs = tf.convert_to_tensor(inputs)
        if (not (training and layer.trainable) or mask is not None
                or layer.renorm or inputs.shape.rank != 4
                or axis not in (-1, 3)
                or inputs.dtype not in (tf.float32, tf.float16,
                                        tf.bfloat16)):
            return call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = (tf.cast(layer.gamma.value, tf.float32) if layer.scale
                 else tf.ones([channels], tf.float32))
        offset = (tf.cast(layer.beta.value, tf.float32) if layer.center
                  else tf.zeros([channels], tf.float32))
        outputs = _fused_batch_norm(inputs, scale, offset, layer.epsilon)
        return tf.cast(outputs, layer.compute_dtype)

    return fused_call


def value_and_grad(fn, weights, *args):
    """Evaluates `fn(weights, *args)` and its gradient with respect to `weights`.

    `fn` returns `(loss, aux)`, where `loss` is a scalar. The gradient is
    recorded by any enclosing tape, so a meta-gradient taken through it is
    exact to second order. Weights that do not affect the loss get zero
    gradients.

    Returns:
        `((loss, aux), gradients)`, with `gradients` a list matching
        `weights`.
    """
    weights = list(weights)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(weights)
        with exact_moments():
            loss, aux = fn(weights, *args)
    gradients = tape.gradient(
        loss, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return (loss, aux), gradients


# Whether a traced meta-step traces its inner gradient steps once
# (`step_function`) instead of once per step. Off by default: it cut the
# first call of a five-step mini-ImageNet MAML by 1.2-1.4 s (of 6.7 and
# 8.1 s), but whether its steps run as fast is not settled: two runs put
# them 1% faster to 4% slower (docs/benchmarks.md, "First calls"), and a
# training run of more than a few dozen steps would pay a 1% slowdown
# back. Set it to True before the first step where first calls matter
# more: short runs, notebooks, tests, many inner steps at evaluation.
SHARE_INNER_STEPS = False


def step_function(fn):
    """`fn` (one inner gradient step, `(fast, state) -> (fast, state)`) as
    one traced function that every inner step of a traced meta-step calls,
    where `SHARE_INNER_STEPS` is set.

    Unrolled, each step is traced anew, with its inner gradient and, in a
    second-order meta-gradient, the gradient of that gradient: tracing
    grows with the number of steps. As a `tf.function` the step and its
    gradient are traced once (twice where the first step's inputs differ
    in type). Run eagerly, inside `tf.vectorized_map` (whose converter
    would have to vectorize the nested function), or with
    `SHARE_INNER_STEPS` off, `fn` runs as it is.
    """
    if (not SHARE_INNER_STEPS or tf.executing_eagerly()
            or _VECTORIZING.active):
        return fn

    def step(*args):
        # Under a scope of its own: a traced function starts at the root
        # name scope, which refuses layer names such as "_hidden".
        with tf.name_scope("inner_step"):
            return fn(*args)

    return tf.function(step, autograph=False)


class _Vectorizing(threading.local):
    # Set while `map_tasks` traces a task function for `tf.vectorized_map`.
    active = False


_VECTORIZING = _Vectorizing()


def remat(fn):
    """`fn` recomputed in the backward pass instead of keeping its
    intermediate values: rematerialization.

    `fn(*args)` returns a nest of tensors. Inside a traced function, the
    forward pass keeps only `fn`'s inputs and outputs for the backward
    pass; the gradient runs `fn` again under a tape of its own (so `fn` may
    take gradients itself: a second-order inner step). It must be
    differentiated in the graph it ran in (a tape inside any loop around
    it, as task-by-task gradients have). Unlike
    `tf.recompute_grad`, tapes keep recording inside `fn` (its own
    gradients work) and tensors `fn` reads from its closure are found in
    the graph and differentiated like its arguments, so a closure over
    meta-parameters keeps its gradient. A `fn` that reads a float variable
    is refused: its gradient would be lost. Run eagerly, `fn` runs as it
    is.
    """

    def wrapped(*args):
        if tf.executing_eagerly():
            return fn(*args)
        graph = tf.compat.v1.get_default_graph()
        num_ops_before = len(graph.get_operations())
        flat_args = [a for a in tf.nest.flatten(args) if tf.is_tensor(a)]
        outputs = fn(*args)
        new_ops = set(graph.get_operations()[num_ops_before:])
        flat_outputs = tf.nest.flatten(outputs)
        differentiable = [
            i for i, t in enumerate(flat_outputs)
            if tf.is_tensor(t) and t.dtype.is_floating]
        inputs = _float_inputs(
            [flat_outputs[i] for i in differentiable], flat_args, new_ops)
        num_inputs = len(inputs)

        @tf.custom_gradient
        def cut(*values):
            def gradient(*output_gradients):
                if tf.compat.v1.get_default_graph() is not graph:
                    # The backward pass of a loop around the step: there,
                    # the recomputation would capture the step's inputs
                    # anew and differentiate the copies.
                    raise ValueError(
                        "A rematerialized inner step is differentiated "
                        "outside the loop that ran it. On TensorFlow, "
                        "rematerialization needs task-by-task gradients: "
                        "leave `task_gradients` at 'auto' or set it to "
                        "True, with a loss reduced by "
                        "'sum_over_batch_size' (Keras's default).")
                output_gradients = [
                    tf.zeros_like(flat_outputs[i]) if g is None else g
                    for i, g in zip(differentiable, output_gradients)]
                # The recomputation waits for the gradients reaching the
                # step: its inputs are ready in the forward pass, and
                # TensorFlow would otherwise run it then and keep its
                # activations until the backward pass, saving nothing.
                with tf.control_dependencies(output_gradients), (
                        tf.GradientTape(
                            watch_accessed_variables=False)) as tape:
                    tape.watch(inputs)
                    again = tf.nest.flatten(fn(*args))
                gradients = tape.gradient(
                    [again[i] for i in differentiable], inputs,
                    output_gradients=output_gradients,
                    unconnected_gradients=tf.UnconnectedGradients.ZERO)
                return list(gradients) + [None] * (len(values) - num_inputs)

            return [tf.identity(v) for v in values[num_inputs:]], gradient

        cut_outputs = cut(*inputs, *[flat_outputs[i] for i in differentiable])
        for i, value in zip(differentiable, cut_outputs):
            flat_outputs[i] = value
        return tf.nest.pack_sequence_as(outputs, flat_outputs)

    return wrapped


def _float_inputs(outputs, args, new_ops):
    """The tensors `outputs` depend on, made outside `new_ops` or read from
    a closure, that an active tape differentiates: the arguments reached,
    then captures (tensors made before, a function graph's placeholders,
    and the constants an eager tensor becomes in a graph).
    """
    arg_refs = {a.ref() for a in args}
    found, seen = [], set()
    pending = list(outputs)
    while pending:
        tensor = pending.pop()
        if tensor.ref() in seen:
            continue
        seen.add(tensor.ref())
        op = tensor.op
        if (tensor.ref() in arg_refs or op not in new_ops
                or not op.inputs):
            if tensor.dtype.is_floating and _recorded(tensor):
                found.append(tensor)
            continue
        if op.type in ("ReadVariableOp", "ResourceGather") and (
                tensor.dtype.is_floating and _recorded(tensor)):
            raise ValueError(
                "A rematerialized inner step reads the variable "
                f"`{op.inputs[0].name}` directly, so its gradient would be "
                "lost. Pass every weight the inner step uses as a tensor "
                "(the MetaModel hooks do), or turn rematerialization off.")
        pending.extend(op.inputs)
    # Arguments first, in their order, then captures in a stable order.
    order = {a.ref(): i for i, a in enumerate(args)}
    return sorted(found, key=lambda t: (
        order.get(t.ref(), len(order)), t.name))


def _recorded(tensor):
    """Whether an active gradient tape differentiates `tensor`."""
    from tensorflow.python.eager import record

    return record.should_record_backprop([tensor])


def read_value(variable):
    """The current value of a Keras variable as a plain tensor.

    Reading variables into tensors before the per-task map lets the outer
    tape differentiate with respect to them, and works for distributed
    variables in replica and cross-replica context alike.
    """
    return tf.convert_to_tensor(variable.value)


def task_mapping(vectorize=False):
    """How tasks are mapped: `"vmap"` (`tf.vectorized_map`) or `"map"`
    (`tf.map_fn`).

    Set `KERAS_META_TASK_MAPPING` to `vmap` or `map` to choose; the default,
    `auto`, vectorizes where the caller says the per-task function
    vectorizes well (`vectorize=True`: a model of dense and elementwise
    layers, whose per-task weights become batched matrix products; 2.6x
    faster for the sinusoid MLP on CPU) and loops otherwise: vectorized
    per-task convolution weights fall back to slow loops or grouped
    convolutions.
    """
    choice = task_mapping_override()
    if choice is not None:
        return choice
    return "vmap" if vectorize else "map"


def map_tasks(fn, elements, output_dtypes, vectorize=False):
    """Applies `fn` to each task of a meta-batch and stacks the results.

    A single task (a leading dimension of 1 known when tracing) runs
    without a loop. Otherwise loops with `tf.map_fn`, whose graph does not
    grow with the number of tasks: tracing takes the same time at
    meta-batch 4 or 64, and the number of tasks may be unknown when the
    step is traced (the last partial batch, a replica's share of a global
    batch). Where
    `task_mapping(vectorize)` says `"vmap"`, `tf.vectorized_map` computes
    all tasks at once instead (ops without a vectorized form still loop).

    Args:
        fn: Callable taking one task's slice of `elements`.
        elements: Nest of tensors whose leading dimension is the task.
        output_dtypes: Nest of dtypes with the structure of `fn`'s output,
            or a callable returning it.
        vectorize: Bool, whether `fn` vectorizes well (see
            `task_mapping`).
    """
    flat = [e for e in tf.nest.flatten(elements) if e is not None]
    if flat and flat[0].shape[0] == 1:
        # One task (a step taken task by task): no loop. Inside a loop the
        # task's backward pass would run in the loop's gradient, where
        # TensorFlow cannot use oneDNN's max-pooling gradient (it needs
        # the forward op's workspace): that alone took a fifth of a
        # Conv-4 meta-step.
        outputs = fn(tf.nest.map_structure(
            lambda e: None if e is None else e[0], elements))
        return tf.nest.map_structure(lambda o: tf.expand_dims(o, 0), outputs)
    # keras_meta is written in `keras.ops` with Python control flow on
    # static values only (as JAX requires), so AutoGraph has nothing to
    # convert; letting `map_fn` or `vectorized_map` convert the task
    # function anyway rewrote the source of every function it calls, which
    # took most of the time of tracing a meta-step.
    fn = tf.autograph.experimental.do_not_convert(fn)
    if task_mapping(vectorize) == "vmap":
        _VECTORIZING.active, previous = True, _VECTORIZING.active
        try:
            return tf.vectorized_map(fn, elements,
                                     fallback_to_while_loop=True)
        finally:
            _VECTORIZING.active = previous
    if callable(output_dtypes):
        output_dtypes = output_dtypes()
    signature = tf.nest.map_structure(
        lambda dtype: tf.TensorSpec(None, tf.as_dtype(dtype)), output_dtypes
    )
    return tf.map_fn(fn, elements, fn_output_signature=signature)


# How many tasks' gradients a task-by-task training step computes at once
# (`sum_task_gradients`'s `parallelism`). "auto" lets the learner choose
# (`MetaModel.task_gradient_parallelism`): one task at a time where the
# meta-gradient runs through inner gradient steps (second order), two
# otherwise. An int set here before the first training step overrides it
# for every learner: 1 holds the least memory, 2 keeps both cores of a
# small machine busy where a single task's work leaves them idle.
TASK_GRADIENT_PARALLELISM = "auto"


def sum_task_gradients(task_fn, elements, weights, output_dtypes,
                       scale_loss=None, parallelism=2):
    """The meta-gradient of a batch mean, accumulated one task at a time.

    Runs `task_fn` on each task of `elements` as a batch of one task, under
    a tape of its own, and adds up the gradients of its loss divided by the
    number of tasks. For a loss that is the mean of the tasks' losses (any
    compiled loss reduced by `"sum_over_batch_size"`), the sum is the
    gradient of the whole batch's loss, while only one task's activations
    are alive at a time: memory no longer grows with the meta-batch.

    Args:
        task_fn: Callable taking one task (the nest `elements` sliced to a
            leading axis of 1) and returning `(outputs, loss)`: a nest of
            tensors with a leading axis of 1, and a scalar.
        elements: Nest of tensors whose leading axis is the task (`None`
            entries pass through).
        weights: List of variables to differentiate with respect to.
        output_dtypes: Nest of dtypes with the structure of `outputs`.
        scale_loss: Optional callable applied to each task's share of the
            loss before differentiation (an optimizer's loss scaling).
        parallelism: Int, how many tasks may be in flight at once (the
            loop's `parallel_iterations`); each holds its own activations.

    Returns:
        `(outputs, loss, gradients)`: the outputs stacked over tasks, the
        mean loss, and one gradient per weight (`None` where no task's
        loss depends on it).
    """
    flat = [e for e in tf.nest.flatten(elements) if e is not None]
    num_tasks = tf.shape(flat[0])[0]
    flat_dtypes = [tf.as_dtype(d) for d in tf.nest.flatten(output_dtypes)]
    connected = []

    def body(index, loss_sum, gradient_sums, arrays):
        # A static leading 1 lets `map_tasks` run the task without a loop.
        task = tf.nest.map_structure(
            lambda e: None if e is None else tf.expand_dims(e[index], 0),
            elements)
        with tf.GradientTape() as tape:
            outputs, loss = task_fn(task)
            share = loss / tf.cast(num_tasks, loss.dtype)
            scaled = share if scale_loss is None else scale_loss(share)
        gradients = tape.gradient(scaled, weights)
        if not connected:
            connected.extend(g is not None for g in gradients)
        gradient_sums = [
            total if g is None else total + tf.convert_to_tensor(g)
            for total, g in zip(gradient_sums, gradients)
        ]
        flat_outputs = tf.nest.flatten(outputs)
        if len(flat_outputs) != len(arrays):
            raise ValueError(
                f"A task's step returned {len(flat_outputs)} outputs where "
                f"its declared dtypes {output_dtypes} list {len(arrays)}.")
        arrays = [
            array.write(index, output[0])
            for array, output in zip(arrays, flat_outputs)
        ]
        loss_sum += tf.cast(share, tf.float32)
        return index + 1, loss_sum, gradient_sums, arrays

    loop_vars = (
        tf.constant(0),
        tf.constant(0.0),
        [tf.zeros(w.shape, w.dtype) for w in weights],
        [tf.TensorArray(dtype, size=num_tasks, infer_shape=True)
         for dtype in flat_dtypes],
    )
    _, loss, gradients, arrays = tf.while_loop(
        lambda index, *_: index < num_tasks, body, loop_vars,
        parallel_iterations=parallelism)
    outputs = tf.nest.pack_sequence_as(
        output_dtypes, [array.stack() for array in arrays])
    gradients = [g if c else None for g, c in zip(gradients, connected)]
    return outputs, loss, gradients


def num_replicas():
    """The number of replicas that share the current global batch."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_index():
    """This replica's place among the replicas that share the global
    batch (0 outside a strategy's replica context)."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return 0
    return context.replica_id_in_sync_group


def implicit_solution(solutions, weights, loss_fn, args, solve):
    """Per-task inner solutions, with implicit-function gradients.

    Returns `solutions` (each task's approximate minimizer of a proximal
    inner problem started from `weights`, computed without recording
    gradients) unchanged in value. Their gradient with respect to `weights`
    is the sum over tasks of `solve(hvp, upstream)`, where `hvp(vectors)` is
    the Hessian-vector product of the task's `loss_fn(solution, *args)[0]`
    at its solution: iMAML's implicit meta-gradient, whose memory does not
    depend on how the solutions were found.

    The Hessian-vector products are taken in a per-task map run during the
    backward pass. That is why this works on the whole meta-batch rather
    than inside the forward per-task map: there, TensorFlow computes wrong
    values for tapes nested in a custom gradient.

    Args:
        solutions: List of tensors `[tasks, ...]`, one per weight.
        weights: List of tensors, the meta-parameters (no task axis).
        loss_fn: Callable `(weights, *args) -> (loss, aux)`, one task's
            inner loss.
        args: Tuple of tensors `[tasks, ...]`, each task's slice passed to
            `loss_fn` (support data, state).
        solve: Callable `(hvp, upstream) -> gradients` for one task.
    """
    solutions = [tf.stop_gradient(s) for s in solutions]
    args = tuple(args)

    def task_gradient(task):
        solution, upstream, task_args = task

        def hvp(vectors):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(solution)
                _, gradients = value_and_grad(loss_fn, solution, *task_args)
                dot = tf.add_n([
                    tf.reduce_sum(g * tf.stop_gradient(v))
                    for g, v in zip(gradients, vectors)
                ])
            return tape.gradient(
                dot, solution,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )

        return solve(hvp, list(upstream))

    @tf.custom_gradient
    def attach(*weights):
        def gradient(*upstream):
            upstream = [
                tf.zeros_like(s) if u is None else u
                for u, s in zip(upstream, solutions)
            ]
            per_task = map_tasks(
                task_gradient, (solutions, upstream, args),
                [s.dtype for s in solutions],
            )
            return [tf.reduce_sum(g, axis=0) for g in per_task]

        return [tf.identity(s) for s in solutions], gradient

    return list(attach(*weights))


def local_batch(batch):
    """One replica's share of a possibly distributed batch.

    Keras builds a distributed model's metrics from one batch of the
    dataset; under `MultiWorkerMirroredStrategy` that batch holds
    per-replica values, which Keras tries to average into one tensor and
    fails for dict inputs (keras-team/keras issue 20585). The first local
    replica's values have the shapes and dtypes the build needs.
    """
    strategy = tf.distribute.get_strategy()

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    return tf.nest.map_structure(local, batch)


def check_label_range(labels, num_classes, message):
    """`labels`, after checking in the graph that `0 <= labels <
    num_classes`; fails the step with `message` otherwise.

    Every batch is checked, not only the first; the error names the
    offending minimum and maximum. Ops that read the returned labels run
    after the check, so it fails before a loss sees a bad label.
    """
    values = tf.cast(labels, tf.int64)
    low, high = tf.reduce_min(values), tf.reduce_max(values)
    check = tf.debugging.Assert(
        tf.logical_or(tf.equal(tf.size(values), 0), tf.logical_and(
            low >= 0, high < num_classes)),
        [message, "Received labels in [min, max]:", low, high],
        summarize=2, name="label_range")
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def check_even_split(data):
    """Raises if a strategy split the global meta-batch `data` unevenly.

    Under a strategy with several replicas, Keras averages the replicas'
    mean losses and metrics, which weights every task of the meta-batch
    alike only when every replica holds the same number of tasks. A global
    meta-batch of 4 tasks on 3 workers is split 2, 2 and 0, and training
    would silently differ from one device's (measured: the weights after
    two steps 0.09 apart). Called in each step; one all-reduce of two
    numbers.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return
    count = tf.cast(tf.shape(tf.nest.flatten(data)[0])[0], tf.float64)
    # The counts c_r are equal exactly when N * sum(c_r^2) = (sum c_r)^2
    # (Cauchy-Schwarz); small integers, exact in float64.
    total, squares = tf.unstack(context.all_reduce(
        tf.distribute.ReduceOp.SUM, tf.stack([count, count * count])))
    replicas = tf.constant(context.num_replicas_in_sync, tf.float64)
    tf.debugging.assert_equal(replicas * squares, total * total, message=(
        f"The strategy split a meta-batch unevenly between its "
        f"{context.num_replicas_in_sync} replicas (fewest and most tasks "
        "on a replica differ), so tasks would be weighted unequally. Use "
        "a meta-batch (the dataset's batch size) that is a multiple of the "
        "number of replicas, and a number of tasks in a finite dataset "
        "that is a multiple of the batch size (or batch it with "
        "drop_remainder=True)."))


def per_replica_logs(logs):
    """Logs shaped for Keras to reduce across replicas.

    Under multi-worker `MultiWorkerMirroredStrategy`, Keras averages each
    step's logs with `strategy.reduce("MEAN", value, axis=0)`, which fails
    for the scalar logs every training step returns; a leading axis of
    size 1 makes that reduction the plain mean over replicas. Elsewhere the
    logs pass unchanged.
    """
    strategy = tf.distribute.get_strategy()
    multi_worker = isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and strategy.extended._in_multi_worker_mode()
    if not multi_worker:
        return logs
    return tf.nest.map_structure(lambda v: tf.reshape(v, [1]), logs)


def loss_and_gradients(fn, variables):
    """Evaluates `fn()` and the gradient of its loss w.r.t. `variables`.

    `fn` takes no argument, reads the variables itself and returns
    `(loss, aux)`. Inner-loop gradients taken inside `fn` (with
    `value_and_grad`) are recorded, so the result is exact to second order.

    Returns:
        `((loss, aux), gradients)`.
    """
    variables = list(variables)
    with tf.GradientTape() as tape:
        loss, aux = fn()
    gradients = tape.gradient(
        loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return (loss, aux), gradients


def compiled(fn):
    """`fn` as a compiled graph function (here `tf.function`)."""
    return tf.function(fn, reduce_retracing=True)
