"""Convolutional meta-steps: keras_meta beside learn2learn, on the same math.

The three configurations in which MAML is usually timed:

- omniglot: Conv-4-64 on 28x28x1, 5-way 1-shot, 15 queries per class,
  meta-batch 32, one inner step, second order;
- omniglot_first_order: the same, first order;
- mini_imagenet: Conv-4-32 on 84x84x3, meta-batch 4, five inner steps.

Both sides run the same network: learn2learn's `CNN4` (four blocks of 3x3
convolution, BatchNormalization with epsilon 1e-5, ReLU and 2x2 max pooling
that rounds down, then a dense head), which keras_meta builds as a Keras
`Sequential` (`keras_network`). BatchNormalization is the one choice that
changes the function computed. learn2learn normalizes every batch, query
sets included, with its own statistics: keras_meta's
`batch_norm="transductive"`. keras_meta's default, `"inductive"`, normalizes
queries with the support set's statistics, a different (and cheaper)
function. Every keras_meta row says its mode (`--batch-norm`); only the
transductive rows compare equal computations, and the table says which
row learn2learn matches.

Before any timing, a guard checks that the sides compute the same
function: each computes the meta-gradient of the configuration (two tasks)
in float64 from the same weights and episodes, and the relative
difference of every gradient tensor must stay below `GRADIENT_TOLERANCE`.
Otherwise the benchmark stops.

Sides: `keras_meta` (TensorFlow backend, through `MAML.train_on_batch`),
`keras_meta_torch` (`KERAS_BACKEND=torch`, same call, the same PyTorch
kernels as learn2learn) and `learn2learn` 0.2.0 (`l2l.algorithms.MAML`:
`clone()`, `adapt()`, one backward per task, the way its examples train).
keras_meta's TensorFlow variants: `default` (`task_gradients="auto"`, task
by task: one task at a time at second order, two at first order),
`whole_batch_gradient` (`task_gradients=False`), `task_by_task`
(`task_gradients=True`), `one_task_at_a_time` and `two_tasks_at_a_time`
(task by task with `TASK_GRADIENT_PARALLELISM` set), `unfused` (Keras's
composite BatchNormalization ops instead of the fused kernel that
transductive passes run) and `autograph` (the per-task functions
converted by AutoGraph, as `tf.map_fn` does unless told not to: the
traced step as it was before keras_meta declined the conversion) and
`shared_steps` (the inner steps traced once and called at every step,
`keras_meta.backend.tensorflow.SHARE_INNER_STEPS`) and
`stock_batch_norm_gradient` (the fused BatchNormalization's second
derivative by TensorFlow's registered gradient, which differentiates a
composite copy of the kernel's gradient under a tape, instead of
keras_meta's closed form,
`keras_meta.backend.tensorflow.CLOSED_FORM_BATCH_NORM_GRADIENT`) and
`no_grappler`, `shared_steps_no_grappler` (TensorFlow's graph optimizer,
Grappler, turned off for the process with
`tf.config.optimizer.set_experimental_options({"disable_meta_optimizer":
True})`: what the first call spends optimizing, and what the steps lose
without it). On
torch: `default`
(task by task, `task_gradients="auto"`, in Keras's default channels-last
layout), `channels_first` (the same network and function in PyTorch's
layout, on whose tensors PyTorch's CPU pooling and ReLU gradient kernels
run faster) and `whole_batch_gradient`.

More keras_meta-only configurations: `omniglot_4`,
`omniglot_first_order_4` (meta-batch 4), `omniglot_strided_4` (stride-2
convolutions instead of max pooling) and `protonet_4`, `protonet_16`
(ProtoNet on the Conv-4 embedding).

Every measurement is a fresh process; the sides alternate in rounds, and
the table gives medians. Per measurement: the first call (tracing
included; on TensorFlow also the part of it spent tracing, the rest being
TensorFlow optimizing and instantiating the traced graph and running it
once), the resident memory before it (imports, model, data) and at its
peak (VmHWM), and the median seconds per step over the timed steps after
it.

learn2learn and the torch backend need PyTorch: pass a Python that has
torch and learn2learn with `--torch-python` (it may be the one running
this script). The committed result used one virtual environment with
TensorFlow, the CPU-run torch 2.14.1, torchvision 0.29.1 and learn2learn
0.2.0 built from its source distribution (its three `.pyx` files
re-translated with a current Cython first, since the shipped C files
predate Python 3.11; installed without its dependencies, plus `gym`
0.26.2, which it imports).

    python benchmarks/conv_step.py --torch-python "$(which python)"
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CONFIGS = {
    "omniglot": dict(shape=(28, 28, 1), filters=64, meta_batch=32,
                     inner_steps=1, inner_learning_rate=0.4,
                     first_order=False),
    "omniglot_first_order": dict(shape=(28, 28, 1), filters=64,
                                 meta_batch=32, inner_steps=1,
                                 inner_learning_rate=0.4, first_order=True),
    "mini_imagenet": dict(shape=(84, 84, 3), filters=32, meta_batch=4,
                          inner_steps=5, inner_learning_rate=0.01,
                          first_order=False),
}
# Smaller meta-batches, a metric learner and a network without max pooling
# (keras_meta only: `--variants whole_batch_gradient task_by_task`).
_OMNIGLOT = CONFIGS["omniglot"]
CONFIGS.update({
    "omniglot_4": dict(_OMNIGLOT, meta_batch=4),
    "omniglot_first_order_4": dict(_OMNIGLOT, meta_batch=4,
                                   first_order=True),
    "omniglot_strided_4": dict(_OMNIGLOT, meta_batch=4, pool=False),
    "protonet_4": dict(_OMNIGLOT, meta_batch=4, learner="protonet"),
    "protonet_16": dict(_OMNIGLOT, meta_batch=16, learner="protonet"),
})
WAYS, SHOTS, QUERIES = 5, 1, 15
BLOCKS = 4
EPSILON = 1e-5  # torch.nn.BatchNorm2d's default, learn2learn's choice.
# The largest difference allowed between the sides' float64 meta-gradients,
# relative to the largest gradient entry: rounding differences of the order
# of 1e-15 pass, a different function (other statistics for the queries,
# another pooling) differs by 1e-2 or more.
GRADIENT_TOLERANCE = 1e-9
GRADIENT_TASKS = 2
HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_SIDES = ("learn2learn", "keras_meta_torch")


def _episodes(config, seed=0, tasks=None, dtype="float32"):
    """One meta-batch of NumPy episodes, channels last."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tasks, shape = tasks or config["meta_batch"], config["shape"]
    support = rng.uniform(size=(tasks, WAYS * SHOTS) + shape)
    query = rng.uniform(size=(tasks, WAYS * QUERIES) + shape)
    support_labels = np.tile(np.repeat(np.arange(WAYS), SHOTS), (tasks, 1))
    query_labels = np.tile(np.repeat(np.arange(WAYS), QUERIES), (tasks, 1))
    return (support.astype(dtype), support_labels.astype("int64"),
            query.astype(dtype), query_labels.astype("int64"))


def _feature_side(config):
    """The side of the last feature map: pooling rounds down (PyTorch's
    `MaxPool2d`, Keras's "valid"), strided "same" convolutions up."""
    side = config["shape"][0]
    for _ in range(BLOCKS):
        side = side // 2 if config.get("pool", True) else -(-side // 2)
    return side


def keras_network(config, data_format="channels_last"):
    """learn2learn's `CNN4` as a Keras `Sequential`, channels last (Keras's
    default) or first (PyTorch's layout)."""
    import keras

    first = data_format == "channels_first"
    height, width, channels = config["shape"]
    layers = [keras.Input(shape=(channels, height, width) if first
                          else config["shape"])]
    pool = config.get("pool", True)
    for i in range(BLOCKS):
        layers += [
            keras.layers.Conv2D(config["filters"], 3, padding="same",
                                strides=1 if pool else 2,
                                data_format=data_format, name=f"conv_{i}"),
            keras.layers.BatchNormalization(axis=1 if first else -1,
                                            epsilon=EPSILON,
                                            name=f"batch_norm_{i}"),
            keras.layers.ReLU(name=f"relu_{i}"),
        ]
        if pool:
            layers.append(keras.layers.MaxPooling2D(
                2, data_format=data_format, name=f"pool_{i}"))
    layers.append(keras.layers.Flatten(name="flatten"))
    if config.get("learner") != "protonet":
        layers.append(keras.layers.Dense(WAYS, name="logits"))
    return keras.Sequential(layers, name="cnn4")


def _reference_weights(config, seed=1):
    """Seeded float64 weights in the Keras network's order and layouts:
    per block the kernel (3, 3, in, out), bias, BatchNormalization scale,
    offset, moving mean and variance; then the head's kernel and bias."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights, channels = [], config["shape"][-1]
    for _ in range(BLOCKS):
        filters = config["filters"]
        weights += [
            rng.normal(0, (2 / (9 * channels)) ** 0.5,
                       (3, 3, channels, filters)),
            rng.normal(0, 0.1, filters),
            rng.uniform(0.5, 1.5, filters),
            rng.normal(0, 0.1, filters),
            np.zeros(filters),
            np.ones(filters),
        ]
        channels = filters
    features = _feature_side(config) ** 2 * channels
    weights += [rng.normal(0, features ** -0.5, (features, WAYS)),
                rng.normal(0, 0.1, WAYS)]
    return weights


def _head_rows(config, kernel, to_channels_first):
    """The head's kernel with its rows reordered between a channels-last
    flattening (height, width, channel) and a channels-first one."""
    side, channels = _feature_side(config), config["filters"]
    if to_channels_first:
        rows = kernel.reshape(side, side, channels, -1).transpose(2, 0, 1, 3)
    else:
        rows = kernel.reshape(channels, side, side, -1).transpose(1, 2, 0, 3)
    return rows.reshape(kernel.shape)


def _to_torch_layout(config, weights):
    """Keras-ordered weights as `[(torch parameter suffix, array)]` for
    learn2learn's `CNN4`, whose flattened features run channel-major."""
    import numpy as np

    pairs = []
    for block in range(BLOCKS):
        kernel, bias, scale, offset = weights[6 * block:6 * block + 4]
        prefix = f"features.{block}."
        pairs += [(prefix + "conv.weight", kernel.transpose(3, 2, 0, 1)),
                  (prefix + "conv.bias", bias),
                  (prefix + "normalize.weight", scale),
                  (prefix + "normalize.bias", offset)]
    kernel, bias = weights[-2:]
    side, channels = _feature_side(config), config["filters"]
    # Keras rows are (height, width, channel); torch's (channel, height,
    # width).
    rows = kernel.reshape(side, side, channels, WAYS).transpose(2, 0, 1, 3)
    pairs += [("classifier.weight", rows.reshape(-1, WAYS).T),
              ("classifier.bias", bias)]
    return [(name, np.ascontiguousarray(array)) for name, array in pairs]


def _memory_mb():
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, value = line.split(":", 1)
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(value.split()[0]) / 1024
    return values


def _reset_peak():
    # Linux: writing 5 resets VmHWM to the current resident size.
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _timed(call, steps):
    """First call, its peak memory, then the median of `steps` calls."""
    before = _memory_mb()["VmRSS"]
    _reset_peak()
    start = time.perf_counter()
    loss = call()
    first = time.perf_counter() - start
    peak = _memory_mb()["VmHWM"]
    # The later steps' own peak above what stays resident after the first
    # call (traced graphs, the optimizer's slots): the step's activations.
    after_first = _memory_mb()["VmRSS"]
    _reset_peak()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = call()
        times.append(time.perf_counter() - start)
    step_peak = _memory_mb()["VmHWM"]
    return {
        "first_call_s": first,
        "resident_before_mb": before,
        "first_call_peak_mb": peak,
        "steady_peak_mb": max(peak, step_peak),
        "resident_after_first_call_mb": after_first,
        "step_peak_above_resident_mb": step_peak - after_first,
        "median_step_s": statistics.median(times),
        "step_times_s": times,
        "final_loss": loss,
    }


def _data_format(variant):
    return "channels_first" if variant == "channels_first" else (
        "channels_last")


def _keras_meta_learner(config, variant, batch_norm, optimizer):
    import keras

    import keras_meta

    network = keras_network(config, _data_format(variant))
    options = {}
    if variant.endswith("no_grappler"):
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": True})
        variant = variant[:-len("no_grappler")].rstrip("_") or "default"
    if variant == "whole_batch_gradient":
        options["task_gradients"] = False
    elif variant == "task_by_task":
        options["task_gradients"] = True
    elif variant == "unfused":
        # Keras's composite BatchNormalization ops where the fused kernel
        # would run: the transductive step as it was before it.
        from keras_meta import backend

        backend.fused_batch_statistics_call = None
    elif variant == "autograph":
        import tensorflow as tf

        tf.autograph.experimental.do_not_convert = lambda fn: fn
    elif variant == "shared_steps":
        from keras_meta.backend import tensorflow as tf_backend

        tf_backend.SHARE_INNER_STEPS = True
    elif variant == "stock_batch_norm_gradient":
        from keras_meta.backend import tensorflow as tf_backend

        tf_backend.CLOSED_FORM_BATCH_NORM_GRADIENT = False
    elif variant == "one_task_at_a_time":
        from keras_meta.backend import tensorflow as tf_backend

        tf_backend.TASK_GRADIENT_PARALLELISM = 1
    elif variant == "two_tasks_at_a_time":
        from keras_meta.backend import tensorflow as tf_backend

        tf_backend.TASK_GRADIENT_PARALLELISM = 2
    if config.get("learner") == "protonet":
        learner = keras_meta.ProtoNet(network, num_ways=WAYS,
                                      batch_norm=batch_norm, **options)
    else:
        learner = keras_meta.MAML(
            network,
            inner_learning_rate=config["inner_learning_rate"],
            num_inner_steps=config["inner_steps"],
            first_order=config["first_order"],
            batch_norm=batch_norm,
            **options,
        )
    learner.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return learner


def _episode_inputs(episodes, variant="default"):
    support, support_labels, query, query_labels = episodes
    if _data_format(variant) == "channels_first":
        import numpy as np

        support, query = (np.ascontiguousarray(a.transpose(0, 1, 4, 2, 3))
                          for a in (support, query))
    return ({"support_inputs": support, "support_labels": support_labels,
             "query_inputs": query}, query_labels)


def time_train_on_batch(learner, config, steps, variant="default"):
    """`_timed` over `learner.train_on_batch` on `config`'s episodes."""
    import numpy as np

    inputs, labels = _episode_inputs(_episodes(config), variant)

    def call():
        return float(np.asarray(
            learner.train_on_batch(inputs, labels)).reshape(-1)[0])

    return _timed(call, steps)


def run_timing_worker(script, arguments, backend, what):
    """Runs `script --worker ...arguments` in a fresh process on `backend`
    and returns the row it prints (with `above_setup_mb` added); raises
    with its error output, naming `what`, if it prints none."""
    process = subprocess.run(
        [sys.executable, os.path.abspath(script), "--worker", *arguments],
        capture_output=True, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                 KERAS_BACKEND=backend))
    result = next((json.loads(line[len("RESULT "):])
                   for line in process.stdout.splitlines()
                   if line.startswith("RESULT ")), None)
    if result is None:
        raise RuntimeError(f"{what} failed:\n{process.stderr[-3000:]}")
    result["above_setup_mb"] = (result["first_call_peak_mb"]
                                - result["resident_before_mb"])
    return result


def _tracing_timer():
    """Wraps TensorFlow's tracing of a `tf.function` (a private function:
    this measures, it changes nothing) and returns a list that collects
    the seconds each outermost trace took."""
    from tensorflow.python.eager.polymorphic_function import (
        tracing_compilation)

    trace = tracing_compilation._create_concrete_function
    seconds, depth = [], [0]

    def timed(*args, **kwargs):
        depth[0] += 1
        start = time.perf_counter()
        try:
            return trace(*args, **kwargs)
        finally:
            depth[0] -= 1
            if not depth[0]:
                seconds.append(time.perf_counter() - start)

    tracing_compilation._create_concrete_function = timed
    return seconds


def keras_meta_worker(name, steps, variant, batch_norm):
    import keras

    config = CONFIGS[name]
    keras.utils.set_random_seed(0)
    learner = _keras_meta_learner(config, variant, batch_norm,
                                  keras.optimizers.Adam(1e-3))
    traces = None
    if keras.backend.backend() == "tensorflow":
        traces = _tracing_timer()
    row = time_train_on_batch(learner, config, steps, variant)
    if traces is not None:
        # The first call's tracing (building the step's graph in Python);
        # the rest of it is TensorFlow optimizing and instantiating that
        # graph, and running it once.
        row["first_call_tracing_s"] = sum(traces)
        row["traces"] = len(traces)
    return row


def keras_meta_gradients(name, variant, batch_norm):
    """The float64 meta-gradient of `GRADIENT_TASKS` tasks from the
    reference weights, read from one step of SGD at learning rate 1."""
    import keras
    import numpy as np

    config = CONFIGS[name]
    keras.config.set_floatx("float64")
    if keras.backend.backend() != "tensorflow":
        # Keras's BatchNormalization computes float64 inputs in float32 on
        # JAX and torch (its type promotion maps float64 to float32); the
        # float32 steps timed are unaffected, but this float64 check of
        # the function computed needs float64 throughout.
        from keras.src.backend.common import dtypes

        dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"
    learner = _keras_meta_learner(config, variant, batch_norm,
                                  keras.optimizers.SGD(1.0))
    model = learner.model
    weights = _reference_weights(config)
    first = _data_format(variant) == "channels_first"
    if first:
        weights[-2] = _head_rows(config, weights[-2], True)
    model.set_weights(weights)
    before = [np.array(w) for w in model.trainable_weights]
    inputs, labels = _episode_inputs(
        _episodes(config, tasks=GRADIENT_TASKS, dtype="float64"), variant)
    learner.train_on_batch(inputs, labels)
    gradients = [b - np.array(w)
                 for b, w in zip(before, model.trainable_weights)]
    if first:
        gradients[-2] = _head_rows(config, gradients[-2], False)
    return gradients


def _learn2learn_model(config, dtype=None):
    import learn2learn as l2l
    import torch

    model = l2l.vision.models.CNN4(
        output_size=WAYS, hidden_size=config["filters"],
        channels=config["shape"][-1], max_pool=True, layers=BLOCKS,
        embedding_size=config["filters"] * _feature_side(config) ** 2)
    if dtype is not None:
        model = model.to(dtype)
    maml = l2l.algorithms.MAML(model, lr=config["inner_learning_rate"],
                               first_order=config["first_order"])
    return model, maml


def _learn2learn_step(maml, config, episodes, tasks):
    """One meta-batch's backward passes, task by task; returns the loss."""
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    support, support_labels, query, query_labels = episodes
    total = 0.0
    for task in range(tasks):
        learner = maml.clone()
        for _ in range(config["inner_steps"]):
            learner.adapt(loss_fn(learner(support[task]),
                                  support_labels[task]))
        loss = loss_fn(learner(query[task]), query_labels[task]) / tasks
        loss.backward()
        total += float(loss)
    return total


def _torch_episodes(episodes):
    import numpy as np
    import torch

    return [torch.from_numpy(np.ascontiguousarray(
        array.transpose(0, 1, 4, 2, 3) if array.ndim == 5 else array))
        for array in episodes]


def _check_learn2learn(name):
    if set(CONFIGS[name]) - set(CONFIGS["omniglot"]):
        raise ValueError(f"{name} is timed for keras_meta only")


def learn2learn_worker(name, steps, variant, batch_norm):
    del variant, batch_norm  # learn2learn's one way: transductive.
    _check_learn2learn(name)
    import torch

    config = CONFIGS[name]
    torch.manual_seed(0)
    _, maml = _learn2learn_model(config)
    optimizer = torch.optim.Adam(maml.parameters(), 1e-3)
    episodes = _torch_episodes(_episodes(config))

    def call():
        optimizer.zero_grad()
        loss = _learn2learn_step(maml, config, episodes,
                                 config["meta_batch"])
        optimizer.step()
        return loss

    return _timed(call, steps)


def learn2learn_gradients(name, variant, batch_norm):
    """learn2learn's float64 meta-gradient from the reference weights, in
    the Keras network's order and layouts."""
    del variant, batch_norm
    _check_learn2learn(name)
    import numpy as np
    import torch

    config = CONFIGS[name]
    model, maml = _learn2learn_model(config, torch.float64)
    parameters = dict(model.named_parameters())
    pairs = _to_torch_layout(config, _reference_weights(config))
    with torch.no_grad():
        for suffix, array in pairs:
            parameters[suffix].copy_(torch.from_numpy(array))
    episodes = _torch_episodes(
        _episodes(config, tasks=GRADIENT_TASKS, dtype="float64"))
    _learn2learn_step(maml, config, episodes, GRADIENT_TASKS)
    gradients = {s: parameters[s].grad.numpy() for s, _ in pairs}
    # Back to Keras's layouts and order (transposes are their own
    # inverses here, reshapes undone by hand).
    result = []
    for block in range(BLOCKS):
        prefix = f"features.{block}."
        result += [gradients[prefix + "conv.weight"].transpose(2, 3, 1, 0),
                   gradients[prefix + "conv.bias"],
                   gradients[prefix + "normalize.weight"],
                   gradients[prefix + "normalize.bias"]]
    side, channels = _feature_side(config), config["filters"]
    rows = gradients["classifier.weight"].T.reshape(channels, side, side,
                                                    WAYS)
    result += [rows.transpose(1, 2, 0, 3).reshape(-1, WAYS),
               gradients["classifier.bias"]]
    return [np.asarray(g) for g in result]


WORKERS = {"keras_meta": keras_meta_worker,
           "keras_meta_torch": keras_meta_worker,
           "learn2learn": learn2learn_worker}
GRADIENT_WORKERS = {"keras_meta": keras_meta_gradients,
                    "keras_meta_torch": keras_meta_gradients,
                    "learn2learn": learn2learn_gradients}


def _environment(side):
    backend = "torch" if side == "keras_meta_torch" else "tensorflow"
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend)


def worker(args):
    if args.gradients_to:
        import numpy as np

        gradients = GRADIENT_WORKERS[args.worker](
            args.config, args.variant, args.batch_norm)
        np.savez(args.gradients_to, *gradients)
        print("RESULT {}", flush=True)
        return
    row = WORKERS[args.worker](args.config, args.steps, args.variant,
                               args.batch_norm)
    print("RESULT " + json.dumps(row), flush=True)


def _run(python, side, config, steps, variant, batch_norm, extra=()):
    command = [python, os.path.abspath(__file__), "--worker", side,
               "--config", config, "--steps", str(steps),
               "--variant", variant, "--batch-norm", batch_norm, *extra]
    process = subprocess.run(command, capture_output=True, text=True,
                             env=_environment(side))
    for line in process.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(
        f"{side} on {config} failed:\n{process.stderr[-3000:]}")


def check_gradients(config, sides):
    """Each side's float64 meta-gradient of the same tasks from the same
    weights, against learn2learn's (else the first side's): the relative
    difference of every tensor. Raises if one exceeds the tolerance."""
    import numpy as np

    gradients = {}
    with tempfile.TemporaryDirectory() as directory:
        for side, python, variant, batch_norm in sides:
            path = os.path.join(directory, f"{len(gradients)}.npz")
            _run(python, side, config, 0, variant, batch_norm,
                 ("--gradients-to", path))
            with np.load(path) as arrays:
                gradients[side, variant, batch_norm] = [
                    arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    keys = list(gradients)
    reference = next((k for k in keys if k[0] == "learn2learn"), keys[0])
    report = []
    for key in keys:
        if key == reference:
            continue
        # Relative to the largest gradient entry of any tensor: the
        # convolutions' biases have gradients of zero in exact arithmetic
        # (a BatchNormalization follows), so their own scale is rounding.
        scale = max(float(np.max(np.abs(b))) for b in gradients[reference])
        worst = max(float(np.max(np.abs(a - b))) / scale
                    for a, b in zip(gradients[key], gradients[reference]))
        report.append({"side": key[0], "variant": key[1],
                       "batch_norm": key[2], "against": reference[0],
                       "max_relative_difference": worst,
                       "same_function": worst <= GRADIENT_TOLERANCE})
        print(f"{config} gradients, {' '.join(key)} against "
              f"{' '.join(reference)}: max relative difference {worst:.1e}",
              flush=True)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+",
                        default=["omniglot", "omniglot_first_order",
                                 "mini_imagenet"],
                        choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=6,
                        help="meta-steps timed after the first call")
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh processes per side and configuration")
    parser.add_argument("--torch-python", default=None,
                        help="a Python with torch and learn2learn 0.2.0")
    parser.add_argument("--sides", nargs="+",
                        default=["keras_meta", "keras_meta_torch",
                                 "learn2learn"],
                        choices=["keras_meta", *TORCH_SIDES],
                        help="the torch sides need --torch-python")
    parser.add_argument("--variants", nargs="+", default=["default"],
                        choices=["default", "whole_batch_gradient",
                                 "task_by_task", "one_task_at_a_time",
                                 "two_tasks_at_a_time", "unfused",
                                 "autograph", "shared_steps",
                                 "stock_batch_norm_gradient", "no_grappler",
                                 "shared_steps_no_grappler"],
                        help="keras_meta settings to time (TensorFlow)")
    parser.add_argument("--torch-variants", nargs="+",
                        default=["default", "channels_first"],
                        choices=["default", "channels_first",
                                 "whole_batch_gradient"],
                        help="keras_meta settings to time (torch)")
    parser.add_argument("--batch-norm", dest="batch_norms", nargs="+",
                        default=["transductive", "inductive"],
                        choices=["transductive", "inductive"],
                        help="keras_meta's BatchNormalization modes")
    parser.add_argument("--skip-gradient-check", action="store_true",
                        help="time without checking the sides' gradients")
    parser.add_argument("--output", default=os.path.join(
        HERE, "results", "conv_step.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="default",
                        choices=["default", "whole_batch_gradient",
                                 "task_by_task", "one_task_at_a_time",
                                 "two_tasks_at_a_time", "channels_first",
                                 "unfused", "autograph", "shared_steps",
                                 "stock_batch_norm_gradient", "no_grappler",
                                 "shared_steps_no_grappler"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--gradients-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.batch_norm = args.batch_norms[0]
        return worker(args)

    sides = []
    for side in args.sides:
        python = sys.executable
        if side in TORCH_SIDES:
            if not args.torch_python:
                print(f"no --torch-python: {side} not timed")
                continue
            python = args.torch_python
        if side == "learn2learn":
            sides.append((side, python, "default", "transductive"))
            continue
        variants = (args.variants if side == "keras_meta"
                    else args.torch_variants)
        sides += [(side, python, variant, batch_norm)
                  for batch_norm in args.batch_norms for variant in variants]
    rows, checks = [], {}
    for config in args.configs:
        same_math = [s for s in sides if s[3] == "transductive"]
        if not args.skip_gradient_check and len(same_math) > 1 and not (
                set(CONFIGS[config]) - set(CONFIGS["omniglot"])):
            checks[config] = check_gradients(config, same_math)
            wrong = [c for c in checks[config] if not c["same_function"]]
            if wrong:
                raise SystemExit(
                    f"{config}: the sides compute different functions "
                    f"({wrong}); nothing timed.")
        runs = {s: [] for s in sides}
        for round_index in range(args.rounds):
            for key in sides:
                side, python, variant, batch_norm = key
                if side == "learn2learn" and set(CONFIGS[config]) - set(
                        CONFIGS["omniglot"]):
                    continue
                result = _run(python, side, config, args.steps, variant,
                              batch_norm)
                runs[key].append(result)
                print(f"{config} round {round_index + 1} {side} {variant} "
                      f"{batch_norm}: {result['median_step_s']:.3f} s/step, "
                      f"first call {result['first_call_s']:.1f} s peaking "
                      f"at {result['first_call_peak_mb']:.0f} MB",
                      flush=True)
        for (side, _, variant, batch_norm), results in runs.items():
            if not results:
                continue
            rows.append({
                "config": config, **{
                    k: v for k, v in CONFIGS[config].items() if k != "shape"},
                "input_shape": list(CONFIGS[config]["shape"]),
                "side": side, "variant": variant, "batch_norm": batch_norm,
                **{key: statistics.median(r[key] for r in results)
                   for key in ("median_step_s", "first_call_s",
                               "resident_before_mb", "first_call_peak_mb",
                               "steady_peak_mb")},
                **({"first_call_tracing_s": statistics.median(
                    r["first_call_tracing_s"] for r in results)}
                   if "first_call_tracing_s" in results[0] else {}),
                "runs": results,
            })
    _report(rows, checks, args)


def _report(rows, checks, args):
    print()
    print("| configuration | implementation | BatchNorm (queries) | "
          "s per step | learn2learn's time / this | first call (s) | "
          "of which tracing (s) | memory above setup (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        reference = next((r for r in rows if r["config"] == row["config"]
                          and r["side"] == "learn2learn"), None)
        ratio = (f"{reference['median_step_s'] / row['median_step_s']:.2f}x"
                 if reference else "")
        name = row["side"] + (
            "" if row["variant"] == "default" else f" ({row['variant']})")
        mode = row["batch_norm"] + (
            ", as learn2learn" if row["batch_norm"] == "transductive"
            else ", support statistics")
        if row["side"] == "learn2learn":
            mode = "transductive"
        print(f"| {row['config']} | {name} | {mode} | "
              f"{row['median_step_s']:.3f} | {ratio} | "
              f"{row['first_call_s']:.1f} | "
              + (f"{row['first_call_tracing_s']:.1f}"
                 if "first_call_tracing_s" in row else "")
              + " | "
              f"{row['first_call_peak_mb'] - row['resident_before_mb']:.0f} "
              "|")
    from meta_step import write_result

    write_result(args.output, "conv_step.py",
                 {"steps": args.steps, "rounds": args.rounds,
                  "gradient_tolerance": GRADIENT_TOLERANCE,
                  "gradient_tasks": GRADIENT_TASKS,
                  "gradient_checks": checks, "rows": rows})


if __name__ == "__main__":
    main()
