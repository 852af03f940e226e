"""Bytes all-reduced per meta-step under a distribution strategy.

With data parallelism over tasks, what crosses the network each step is
what the strategy reduces: the meta-gradient (one value per trainable
weight) plus the compiled metrics' and the loss tracker's state and
keras_meta's check that every replica holds as many tasks. This benchmark
records every tensor that `MirroredStrategy` (two logical CPUs) reduces
in the training step `train_on_batch` traces and then runs unchanged, for each configuration,
and checks the gradient part against the model's trainable weights: equal
bytes, so the model size predicts the traffic. Each tensor reduced by an
all-reduce over N workers costs each worker 2 (N - 1) / N times its bytes
on a ring (sent and received alike); the table gives that for 2, 4 and 8
workers. Prints a table and writes JSON.

    python benchmarks/communication.py
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

# name: (learner, network, input shape, ways)
CONFIGS = {
    "sinusoid MAML (MLP 1-40-40-1)": ("maml", "mlp", (1,), None),
    "Omniglot MAML (Conv-4-64, 28x28x1)": ("maml", "conv4", (28, 28, 1), 5),
    "mini-ImageNet MAML (Conv-4-32, 84x84x3)": ("maml", "conv4_32",
                                                (84, 84, 3), 5),
    "Omniglot ProtoNet (Conv-4-64, 28x28x1)": ("protonet", "conv4",
                                               (28, 28, 1), 5),
    "mini-ImageNet ProtoNet (ResNet-12, 84x84x3)": ("protonet", "resnet12",
                                                    (84, 84, 3), 5),
}


def measure(name):
    import numpy as np
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    import keras_meta

    learner_name, network, shape, ways = CONFIGS[name]
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"],
        cross_device_ops=tf.distribute.ReductionToOneDevice())
    reduced = []
    extended = strategy.extended
    batch_reduce_to, reduce_to = (extended._batch_reduce_to,
                                  extended._reduce_to)

    def record(value):
        local = strategy.experimental_local_results(value)[0]
        reduced.append((tuple(local.shape), local.dtype.size))

    def recording_batch_reduce_to(reduce_op, pairs, options):
        for value, _ in pairs:
            record(value)
        return batch_reduce_to(reduce_op, pairs, options)

    def recording_reduce_to(reduce_op, value, destinations, options):
        record(value)
        return reduce_to(reduce_op, value, destinations, options)

    extended._batch_reduce_to = recording_batch_reduce_to
    extended._reduce_to = recording_reduce_to

    rng = np.random.default_rng(0)
    tasks, shots, queries = 2, 1, 2
    with strategy.scope():
        keras.utils.set_random_seed(0)
        if network == "mlp":
            model = keras_meta.models.mlp(hidden_units=(40, 40))
            loss = "mse"
            labels = rng.normal(
                size=(tasks, queries, 1)).astype("float32")
            # Sinusoid's K = 5 support points.
            support_labels = rng.normal(size=(tasks, 5, 1)).astype("float32")
        else:
            outputs = ways if learner_name == "maml" else None
            if network == "resnet12":
                model = keras_meta.models.resnet12(num_outputs=outputs,
                                                   input_shape=shape)
            else:
                model = keras_meta.models.conv4(
                    num_outputs=outputs, input_shape=shape,
                    filters=32 if network == "conv4_32" else 64)
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True)
            support_labels = np.tile(np.arange(ways, dtype="int32"),
                                     (tasks, shots))
            labels = rng.integers(0, ways, (tasks, queries)).astype("int32")
        if learner_name == "maml":
            learner = keras_meta.MAML(model, inner_learning_rate=0.4)
        else:
            learner = keras_meta.ProtoNet(model, num_ways=ways)
        learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss,
                        metrics=([] if network == "mlp" else ["accuracy"]))
    num_support = support_labels.shape[1]
    inputs = {
        "support_inputs": rng.normal(
            size=(tasks, num_support) + shape).astype("float32"),
        "support_labels": support_labels,
        "query_inputs": rng.normal(
            size=(tasks, queries) + shape).astype("float32"),
    }
    # The first call traces the step, whose all-reduces are recorded once,
    # at tracing: the gradients (found below by shape) among them. Every
    # call also reduces the metrics' and the loss tracker's values it
    # returns: recorded again on the second and third calls, which must
    # not trace again.
    learner.train_on_batch(inputs, labels)
    first = list(reduced)
    del reduced[:]
    learner.train_on_batch(inputs, labels)
    logs = list(reduced)
    del reduced[:]
    learner.train_on_batch(inputs, labels)
    assert reduced == logs, "the step traced again"
    weights = learner.trainable_variables
    weight_shapes = sorted(tuple(v.shape) for v in weights)
    weight_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                       for v in weights)
    # The gradients: the traced float32 tensors shaped as the weights, one
    # each, taken from the end of the trace (the optimizer reduces last).
    remaining = list(first)
    gradient_bytes = 0
    for shape_ in weight_shapes:
        for i in range(len(remaining) - 1, -1, -1):
            s, size = remaining[i]
            if s == shape_ and size == 4:
                gradient_bytes += int(np.prod(s)) * size
                del remaining[i]
                break
        else:
            raise AssertionError(f"no reduced gradient of shape {shape_}")
    # Besides: the returned logs and the even-split check (two float64).
    remaining = logs + [((2,), 8)]
    other_bytes = sum(int(np.prod(s)) * size for s, size in remaining)
    total = gradient_bytes + other_bytes
    return {
        "configuration": name,
        "trainable_weights": sum(int(np.prod(v.shape)) for v in weights),
        "weight_bytes": weight_bytes,
        "gradient_bytes_reduced": gradient_bytes,
        "other_bytes_reduced": other_bytes,
        "other_tensors": len(remaining),
        "bytes_per_step": total,
        "ring_bytes_per_worker": {
            str(n): round(2 * (n - 1) / n * total) for n in (2, 4, 8)},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=os.path.join(
        RESULTS, "communication.json"))
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(measure(args.worker)))
        return
    import subprocess

    rows = []
    for name in CONFIGS:
        # A process each: logical devices are set before TensorFlow starts.
        result = subprocess.run(
            [sys.executable, __file__, "--worker", name],
            capture_output=True, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                 "KERAS_BACKEND": "tensorflow"})
        if result.returncode:
            raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        assert row["gradient_bytes_reduced"] == row["weight_bytes"], row
    header = (f"{'configuration':46} {'weights':>10} {'gradients (B)':>14} "
              f"{'other (B)':>10} {'ring/worker, 2 / 4 / 8 workers (MB)':>36}")
    print(header)
    for row in rows:
        ring = " / ".join(f"{row['ring_bytes_per_worker'][n] / 1e6:.3f}"
                          for n in ("2", "4", "8"))
        print(f"{row['configuration']:46} {row['trainable_weights']:>10,} "
              f"{row['gradient_bytes_reduced']:>14,} "
              f"{row['other_bytes_reduced']:>10,} {ring:>36}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"command": "python benchmarks/communication.py",
                   "strategy": "MirroredStrategy over 2 logical CPUs, "
                               "tensors recorded while one train step is "
                               "traced",
                   "rows": rows}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
