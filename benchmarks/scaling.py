"""How a convolutional meta-step's cost grows, one axis at a time.

From `benchmarks/conv_step.py`'s Omniglot configuration (learn2learn's
Conv-4-64 with BatchNorm, 28x28x1, 5-way 1-shot, 15 queries per class,
meta-batch 32, one second-order inner step), each axis is varied alone:
meta-batch, ways, image side and inner steps. Every point is a fresh
process on the TensorFlow backend (`--backend jax` for JAX) running
`MAML.train_on_batch` with the library's defaults: its first call (tracing
included), its peak resident memory above the memory after imports, model
and data, and the median of `--steps` calls after it.

Per axis, the table gives the exponent of a least-squares power law
fitted to time (and memory) against the axis's value, beside the exponent
of the work: images per step grow linearly with meta-batch and ways, and
pixels quadratically with the image side; inner steps add a forward and
backward pass each. An exponent well above its work's says that axis
costs more than its work.

    python benchmarks/scaling.py
    python benchmarks/scaling.py --axes meta_batch --backend jax
"""

import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
AXES = {
    "meta_batch": [1, 4, 16, 64],
    "ways": [5, 20, 60],
    "side": [28, 56, 84],
    "inner_steps": [1, 2, 5, 10],
}
# The exponent of the work per step along each axis (images, pixels or
# passes).
WORK_EXPONENT = {"meta_batch": 1.0, "ways": 1.0, "side": 2.0,
                 "inner_steps": 1.0}


def _config(axis, value):
    sys.path.insert(0, HERE)
    import conv_step

    config = dict(conv_step.CONFIGS["omniglot"])
    if axis == "side":
        config["shape"] = (value, value, 1)
    elif axis != "ways":
        config[axis] = value
    return config


def worker(axis, value, steps):
    import keras

    sys.path.insert(0, HERE)
    import conv_step

    import keras_meta

    config = _config(axis, value)
    ways = value if axis == "ways" else conv_step.WAYS
    # conv_step's helpers build 5-way heads and episodes: set the ways.
    conv_step.WAYS = ways
    keras.utils.set_random_seed(0)
    learner = keras_meta.MAML(
        conv_step.keras_network(config),
        inner_learning_rate=config["inner_learning_rate"],
        num_inner_steps=config["inner_steps"])
    learner.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return conv_step.time_train_on_batch(learner, config, steps)


def fitted_exponent(values, measurements):
    """The slope of log(measurement) against log(value), least squares."""
    xs = [math.log(v) for v in values]
    ys = [math.log(max(m, 1e-9)) for m in measurements]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--axes", nargs="+", default=list(AXES),
                        choices=list(AXES))
    parser.add_argument("--backend", default="tensorflow",
                        choices=["tensorflow", "jax"])
    parser.add_argument("--steps", type=int, default=2,
                        help="calls timed after the first")
    parser.add_argument("--output", default=None,
                        help="defaults to results/scaling_BACKEND.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--value", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        row = worker(args.worker, args.value, args.steps)
        print("RESULT " + json.dumps(row), flush=True)
        return
    output = args.output or os.path.join(
        HERE, "results", f"scaling_{args.backend}.json")

    sys.path.insert(0, HERE)
    import conv_step

    rows, fits = [], []
    for axis in args.axes:
        points = []
        for value in AXES[axis]:
            result = conv_step.run_timing_worker(
                __file__, [axis, "--value", str(value), "--steps",
                           str(args.steps)],
                args.backend, f"{axis}={value}")
            row = {"axis": axis, "value": value, **result}
            rows.append(row)
            points.append(row)
            print(f"{axis} = {value}: {result['median_step_s']:.3f} s/step, "
                  f"{result['above_setup_mb']:.0f} MB above setup, first "
                  f"call {result['first_call_s']:.1f} s", flush=True)
        values = [p["value"] for p in points]
        fits.append({
            "axis": axis, "values": values,
            "work_exponent": WORK_EXPONENT[axis],
            "time_exponent": fitted_exponent(
                values, [p["median_step_s"] for p in points]),
            "memory_exponent": fitted_exponent(
                values, [p["above_setup_mb"] for p in points]),
        })
    print()
    print(f"Backend: {args.backend}")
    print("| axis | value | s per step | memory above setup (MB) | "
          "first call (s) |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['axis']} | {row['value']} | "
              f"{row['median_step_s']:.3f} | {row['above_setup_mb']:.0f} | "
              f"{row['first_call_s']:.1f} |")
    print()
    print("| axis | values | work exponent | time exponent | memory exponent |")
    print("| --- | --- | --- | --- | --- |")
    for fit in fits:
        print(f"| {fit['axis']} | {fit['values'][0]}-{fit['values'][-1]} | "
              f"{fit['work_exponent']:.1f} | {fit['time_exponent']:.2f} | "
              f"{fit['memory_exponent']:.2f} |")
    sys.path.insert(0, HERE)
    from meta_step import write_result

    write_result(output, "scaling.py",
                 {"backend": args.backend, "base_config": "omniglot",
                  "batch_norm": "inductive (the default)", "rows": rows,
                  "fits": fits})


if __name__ == "__main__":
    main()
