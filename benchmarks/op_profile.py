"""Where a convolutional meta-step's time goes, by TensorFlow op type.

Profiles `--steps` MAML meta-steps of a `benchmarks/conv_step.py`
configuration (default: first-order Omniglot, meta-batch 32) with
`tf.profiler`, after two untimed steps, once per keras_meta variant
(`default`: task by task; `whole_batch_gradient`) and BatchNormalization
mode (`--batch-norm`), each in a fresh process,
and reads the per-op statistics back with TensorFlow's own profiler
plugin. Prints the op types taking the most kernel time per step (summed
over threads, so it can exceed the step's wall time) and writes JSON.

    python benchmarks/op_profile.py
"""

import argparse
import collections
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def kernel_stats(directory, steps):
    """Seconds and kernels per step by op type, from the `tf.profiler`
    trace written to `directory` over `steps` steps (framework op
    statistics: each op's own time, idle time left out)."""
    from tensorflow.python.profiler.internal import (
        _pywrap_profiler_plugin as plugin)

    (path,) = glob.glob(os.path.join(directory, "**", "*.xplane.pb"),
                        recursive=True)
    data, _ = plugin.xspace_to_tools_data([path], "framework_op_stats", {})
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    totals, counts = collections.Counter(), collections.Counter()
    for row in table["rows"]:
        row = dict(zip(columns, [c.get("v") for c in row["c"]]))
        if row["type"] == "IDLE":
            continue
        totals[row["type"]] += row["total_self_time"] / 1e6 / steps
        counts[row["type"]] += row["occurrences"] / steps
    return totals, counts


def worker(config_name, variant, batch_norm, steps):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    sys.path.insert(0, HERE)
    import conv_step

    config = conv_step.CONFIGS[config_name]
    keras.utils.set_random_seed(0)
    maml = conv_step._keras_meta_learner(config, variant, batch_norm,
                                         keras.optimizers.Adam(1e-3))
    inputs, query_labels = conv_step._episode_inputs(
        conv_step._episodes(config))
    for _ in range(2):
        maml.train_on_batch(inputs, query_labels)
    with tempfile.TemporaryDirectory() as directory:
        tf.profiler.experimental.start(directory)
        start = time.perf_counter()
        for _ in range(steps):
            maml.train_on_batch(inputs, query_labels)
        seconds = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        totals, counts = kernel_stats(directory, steps)
    return {"config": config_name, "variant": variant,
            "batch_norm": batch_norm,
            "profiled_step_s": seconds,
            "kernel_s_per_step": sum(totals.values()),
            "op_types": [{"type": name, "s_per_step": value,
                          "ops_per_step": int(counts[name])}
                         for name, value in totals.most_common()]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="omniglot_first_order")
    parser.add_argument("--variants", nargs="+",
                        default=["default", "whole_batch_gradient"],
                        choices=["default", "whole_batch_gradient"])
    parser.add_argument("--batch-norm", dest="batch_norms", nargs="+",
                        default=["transductive", "inductive"],
                        choices=["transductive", "inductive"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--output", default=os.path.join(
        HERE, "results", "op_profile.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        variant, batch_norm = args.worker.split("/")
        print("RESULT " + json.dumps(worker(args.config, variant, batch_norm,
                                            args.steps)), flush=True)
        return
    rows = []
    for variant, batch_norm in [(v, b) for v in args.variants
                                for b in args.batch_norms]:
        process = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker",
             f"{variant}/{batch_norm}",
             "--config", args.config, "--steps", str(args.steps)],
            capture_output=True, text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        lines = [line for line in process.stdout.splitlines()
                 if line.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(f"{variant} failed:\n{process.stderr[-3000:]}")
        rows.append(json.loads(lines[-1][len("RESULT "):]))
    for row in rows:
        print(f"\n{row['config']}, {row['variant']}, "
              f"batch_norm={row['batch_norm']}: "
              f"{row['profiled_step_s']:.2f} s per profiled step, "
              f"{row['kernel_s_per_step']:.2f} s of kernel time")
        print("| op type | s per step | share | ops per step |")
        print("| --- | --- | --- | --- |")
        for op in row["op_types"][:args.top]:
            print(f"| {op['type']} | {op['s_per_step']:.3f} | "
                  f"{op['s_per_step'] / row['kernel_s_per_step']:.0%} | "
                  f"{op['ops_per_step']} |")
    from meta_step import write_result

    write_result(args.output, "op_profile.py",
                 {"steps": args.steps, "rows": rows})


if __name__ == "__main__":
    main()
