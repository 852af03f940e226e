"""Second-order convolutional meta-steps: keras_meta beside learn2learn.

The three configurations in which MAML is usually timed:

- omniglot: Conv-4-64 on 28x28x1, 5-way 1-shot, 15 queries per class,
  meta-batch 32, one inner step, second order;
- omniglot_first_order: the same, first order;
- mini_imagenet: Conv-4-32 on 84x84x3, meta-batch 4, five inner steps.

keras_meta's variants: `default` (`task_gradients="auto"`, which takes
these batches task by task, two tasks at a time), `whole_batch_gradient`
(`task_gradients=False`, the whole meta-batch differentiated at once, as
before), `task_by_task` (`task_gradients=True`) and `one_task_at_a_time`
(task by task without overlap).

More keras_meta-only configurations compare the whole batch with task by
task where "auto" once chose the whole batch: `omniglot_4`,
`omniglot_first_order_4` (meta-batch 4), `omniglot_strided_4` (Conv-4
with stride-2 convolutions instead of max pooling) and `protonet_4`,
`protonet_16` (ProtoNet on the Conv-4 embedding).

Both sides run the same network (four blocks of 3x3 convolution,
BatchNorm with batch statistics, ReLU and 2x2 max pooling, then a dense
head) on the same seeded episodes, one meta-step of Adam per call:
keras_meta through `MAML.train_on_batch`, learn2learn 0.2.0 through
`l2l.algorithms.MAML` (`clone()`, `adapt()`, one backward per task, the way
its examples train). Every measurement is a fresh process; the sides
alternate in rounds, and the table gives medians. Per measurement: the
first call (tracing included) and the resident memory it peaked at
(VmHWM), the memory before it (imports, model, data), and the median
seconds per step over the timed steps after it.

learn2learn lives in another Python (it needs PyTorch): pass its
interpreter with `--torch-python`; without one only keras_meta is timed.
The committed result used a virtual environment with the CPU build of
torch 2.13.0, learn2learn 0.2.0 built from its source distribution (its
three `.pyx` files re-translated with a current Cython first, since the
shipped C files predate Python 3.11) and torchvision 0.28.0 with its
compiled operators left out (learn2learn imports torchvision but this
benchmark uses none of its operators).

    python benchmarks/conv_step.py --torch-python /path/to/torch/python
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
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
HERE = os.path.dirname(os.path.abspath(__file__))


def _episodes(config, seed=0):
    """One meta-batch of NumPy episodes, channels last."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tasks, shape = config["meta_batch"], config["shape"]
    support = rng.uniform(size=(tasks, WAYS * SHOTS) + shape)
    query = rng.uniform(size=(tasks, WAYS * QUERIES) + shape)
    support_labels = np.tile(np.repeat(np.arange(WAYS), SHOTS), (tasks, 1))
    query_labels = np.tile(np.repeat(np.arange(WAYS), QUERIES), (tasks, 1))
    return (support.astype("float32"), support_labels.astype("int64"),
            query.astype("float32"), query_labels.astype("int64"))


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
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = call()
        times.append(time.perf_counter() - start)
    return {
        "first_call_s": first,
        "resident_before_mb": before,
        "first_call_peak_mb": peak,
        "steady_peak_mb": _memory_mb()["VmHWM"],
        "median_step_s": statistics.median(times),
        "step_times_s": times,
        "final_loss": loss,
    }


def keras_meta_worker(name, steps, variant):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    import keras_meta

    config = CONFIGS[name]
    keras.utils.set_random_seed(0)
    options = {}
    if variant == "whole_batch_gradient":
        options["task_gradients"] = False
    elif variant == "task_by_task":
        options["task_gradients"] = True
    elif variant == "one_task_at_a_time":
        from keras_meta.backend import tensorflow as tf_backend

        tf_backend.TASK_GRADIENT_PARALLELISM = 1
    if config.get("learner") == "protonet":
        maml = keras_meta.ProtoNet(
            keras_meta.models.conv4(num_outputs=None,
                                    input_shape=config["shape"],
                                    filters=config["filters"]),
            num_ways=WAYS, **options)
    else:
        maml = keras_meta.MAML(
            keras_meta.models.conv4(num_outputs=WAYS,
                                    input_shape=config["shape"],
                                    filters=config["filters"],
                                    pool=config.get("pool", True)),
            inner_learning_rate=config["inner_learning_rate"],
            num_inner_steps=config["inner_steps"],
            first_order=config["first_order"],
            **options,
        )
    maml.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    support, support_labels, query, query_labels = _episodes(config)
    inputs = {"support_inputs": support, "support_labels": support_labels,
              "query_inputs": query}

    def call():
        return float(np.asarray(
            maml.train_on_batch(inputs, query_labels)).reshape(-1)[0])

    return _timed(call, steps)


def learn2learn_worker(name, steps, variant):
    del variant
    if set(CONFIGS[name]) - set(CONFIGS["omniglot"]):
        raise ValueError(f"{name} is timed for keras_meta only")
    import learn2learn as l2l
    import numpy as np
    import torch

    config = CONFIGS[name]
    torch.manual_seed(0)
    side = config["shape"][0]
    for _ in range(4):
        side //= 2  # PyTorch's pooling rounds down, Keras's "same" up.
    model = l2l.vision.models.CNN4(
        output_size=WAYS, hidden_size=config["filters"],
        channels=config["shape"][-1], max_pool=True, layers=4,
        embedding_size=config["filters"] * side * side)
    maml = l2l.algorithms.MAML(model, lr=config["inner_learning_rate"],
                               first_order=config["first_order"])
    optimizer = torch.optim.Adam(maml.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    support, support_labels, query, query_labels = (
        torch.from_numpy(np.ascontiguousarray(
            array.transpose(0, 1, 4, 2, 3) if array.ndim == 5 else array))
        for array in _episodes(config))
    tasks = config["meta_batch"]

    def call():
        optimizer.zero_grad()
        total = 0.0
        for task in range(tasks):
            learner = maml.clone()
            for _ in range(config["inner_steps"]):
                learner.adapt(loss_fn(learner(support[task]),
                                      support_labels[task]))
            loss = loss_fn(learner(query[task]), query_labels[task]) / tasks
            loss.backward()
            total += float(loss)
        optimizer.step()
        return total

    return _timed(call, steps)


def worker(args):
    function = {"keras_meta": keras_meta_worker,
                "learn2learn": learn2learn_worker}[args.worker]
    row = function(args.config, args.steps, args.variant)
    print("RESULT " + json.dumps(row), flush=True)


def _run(python, side, config, steps, variant):
    command = [python, os.path.abspath(__file__), "--worker", side,
               "--config", config, "--steps", str(steps),
               "--variant", variant]
    process = subprocess.run(command, capture_output=True, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    for line in process.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(
        f"{side} on {config} failed:\n{process.stderr[-3000:]}")


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
    parser.add_argument("--variants", nargs="+", default=["default"],
                        choices=["default", "whole_batch_gradient",
                                 "task_by_task", "one_task_at_a_time"],
                        help="keras_meta settings to time")
    parser.add_argument("--output", default=os.path.join(
        HERE, "results", "conv_step.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="default",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    sides = [("keras_meta", sys.executable, v) for v in args.variants]
    if args.torch_python:
        sides.append(("learn2learn", args.torch_python, "default"))
    rows = []
    for config in args.configs:
        runs = {(side, variant): [] for side, _, variant in sides}
        for round_index in range(args.rounds):
            for side, python, variant in sides:
                result = _run(python, side, config, args.steps, variant)
                runs[side, variant].append(result)
                print(f"{config} round {round_index + 1} {side} {variant}: "
                      f"{result['median_step_s']:.3f} s/step, first call "
                      f"{result['first_call_s']:.1f} s peaking at "
                      f"{result['first_call_peak_mb']:.0f} MB", flush=True)
        for (side, variant), results in runs.items():
            rows.append({
                "config": config, **{
                    k: v for k, v in CONFIGS[config].items() if k != "shape"},
                "input_shape": list(CONFIGS[config]["shape"]),
                "side": side, "variant": variant,
                **{key: statistics.median(r[key] for r in results)
                   for key in ("median_step_s", "first_call_s",
                               "resident_before_mb", "first_call_peak_mb",
                               "steady_peak_mb")},
                "runs": results,
            })
    _report(rows, args)


def _report(rows, args):
    print()
    print("| configuration | implementation | s per step | ratio to "
          "learn2learn (else to the first row) | first call (s) | "
          "resident before (MB) | peak (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        same = [r for r in rows if r["config"] == row["config"]]
        reference = next(
            (r for r in same if r["side"] == "learn2learn"), same[0])
        ratio = (f"{row['median_step_s'] / reference['median_step_s']:.2f}"
                 if reference else "")
        name = row["side"] + (
            "" if row["variant"] == "default" else f" ({row['variant']})")
        print(f"| {row['config']} | {name} | {row['median_step_s']:.3f} | "
              f"{ratio} | {row['first_call_s']:.1f} | "
              f"{row['resident_before_mb']:.0f} | "
              f"{row['first_call_peak_mb']:.0f} |")
    from meta_step import write_result

    write_result(args.output, "conv_step.py",
                 {"steps": args.steps, "rounds": args.rounds, "rows": rows})


if __name__ == "__main__":
    main()
