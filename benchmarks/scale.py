"""Meta-steps per second on one machine: devices, precision and XLA.

Second-order MAML on the Omniglot-shaped configuration (Conv4-64 with
BatchNorm, 28x28x1, 5-way 1-shot, 15 queries per class, one inner step,
meta-batch `--meta-batch-size`) and on sinusoid (MLP 1-40-40-1, K=10,
meta-batch 25), TensorFlow backend, each variant in turn in this one
process:

- one device (the default strategy) against `MirroredStrategy` over two
  logical CPU devices (the CPU split in two, as a two-GPU machine would be);
- float32 against `mixed_bfloat16` against XLA (`jit_compile=True`).

Each variant runs `--warmup` steps (tracing included), then is timed over
`--steps` steps, three times; the median is reported, with ratios to the
float32 one-device row. Prints a table and writes JSON.

    python benchmarks/scale.py
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices for MirroredStrategy, before TensorFlow starts.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

import keras_meta  # noqa: E402


def _omniglot(meta_batch, num_batches):
    rng = np.random.default_rng(0)
    tasks = meta_batch * num_batches
    inputs = {
        "support_inputs": rng.uniform(size=(tasks, 5, 28, 28, 1)).astype(
            "float32"),
        "support_labels": np.tile(np.arange(5), (tasks, 1)).astype("int32"),
        "query_inputs": rng.uniform(size=(tasks, 75, 28, 28, 1)).astype(
            "float32"),
    }
    labels = np.tile(np.repeat(np.arange(5), 15), (tasks, 1)).astype("int32")
    return inputs, labels


def _sinusoid(meta_batch, num_batches):
    batches = list(keras_meta.data.sinusoid(
        num_shots=10, batch_size=meta_batch, seed=0).take(num_batches)
        .as_numpy_iterator())
    inputs = {k: np.concatenate([b[0][k] for b in batches])
              for k in batches[0][0]}
    return inputs, np.concatenate([b[1] for b in batches])


def _build(config, policy):
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    if config == "omniglot":
        return keras_meta.MAML(keras_meta.models.conv4(num_outputs=5, seed=0),
                               inner_learning_rate=0.4), keras.losses \
            .SparseCategoricalCrossentropy(from_logits=True)
    return keras_meta.MAML(keras_meta.models.mlp(seed=0),
                           inner_learning_rate=0.01), "mse"


def measure(config, meta_batch, *, strategy=None, policy="float32",
            jit_compile=False, warmup=2, steps=5, repeats=3):
    data = (_omniglot if config == "omniglot" else _sinusoid)(
        meta_batch, warmup + steps)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        maml, loss = _build(config, policy)
        maml.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss,
                     jit_compile=jit_compile)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(meta_batch)
    start = time.perf_counter()
    maml.fit(dataset.take(warmup), epochs=1, verbose=0)
    first = time.perf_counter() - start
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        maml.fit(dataset.skip(warmup), epochs=1, verbose=0)
        rates.append(steps / (time.perf_counter() - start))
    keras.mixed_precision.set_global_policy("float32")
    return {"warmup_seconds": first, "steps_per_second": statistics.median(
        rates), "all_steps_per_second": rates}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meta-batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "scale.json"))
    args = parser.parse_args()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    variants = [
        ("float32, 1 device", {}),
        ("float32, MirroredStrategy x2", {"strategy": mirrored}),
        ("mixed_bfloat16, 1 device", {"policy": "mixed_bfloat16"}),
        ("float32 + XLA, 1 device", {"jit_compile": True}),
    ]
    rows = []
    for config, meta_batch in (("omniglot", args.meta_batch_size),
                               ("sinusoid", 25)):
        base = None
        for name, options in variants:
            result = measure(config, meta_batch, steps=args.steps, **options)
            base = base or result["steps_per_second"]
            result.update(config=config, variant=name,
                          ratio=result["steps_per_second"] / base)
            rows.append(result)
            print(f"{config:<9}{name:<30}{result['steps_per_second']:>8.2f} "
                  f"steps/s  x{result['ratio']:.2f}  (first "
                  f"{result['warmup_seconds']:.1f} s)", flush=True)
    print()
    print(f"MAML meta-steps per second, TensorFlow {tf.__version__}, "
          f"{os.cpu_count()} CPU cores, median of 3 x {args.steps} steps")
    print(f"{'config':<10}{'variant':<32}{'steps/s':>9}{'ratio':>8}"
          f"{'first call s':>14}")
    for row in rows:
        print(f"{row['config']:<10}{row['variant']:<32}"
              f"{row['steps_per_second']:>9.2f}{row['ratio']:>8.2f}"
              f"{row['warmup_seconds']:>14.1f}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"meta_batch_size": args.meta_batch_size, "rows": rows}, f,
                  indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
