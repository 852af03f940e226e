"""Speed of a second-order MAML meta-step, through `fit()` and bare.

Two configurations from the literature:

- omniglot: Conv4-64 with BatchNorm on 28x28x1, 5-way 1-shot, 15 queries
  per class, meta-batch 32, one inner step (Finn et al., 2017).
- mini_imagenet: Conv4-32 on 84x84x3, 5-way 1-shot, 15 queries per class,
  meta-batch 4, five inner steps.

For each backend it reports the first `fit()` call (tracing and compiling
included), meta-steps per second through `fit()` (steady state, from the
tenth step to the end, and with the call's setup included) and through the
bare compiled `train_step`, prints a table and writes JSON. With several
backends each runs in its own process (a backend is chosen at import), so
on a CPU TensorFlow and JAX are compared side by side in one run. Episodes
are NumPy arrays, so nothing here needs TensorFlow on the JAX backend.

    python benchmarks/meta_step.py                          # TF and JAX
    python benchmarks/meta_step.py --backends jax --steps 50   # on a GPU
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

CONFIGS = {
    "omniglot": dict(shape=(28, 28, 1), filters=64, meta_batch=32,
                     inner_steps=1, inner_learning_rate=0.4),
    "mini_imagenet": dict(shape=(84, 84, 3), filters=32, meta_batch=4,
                          inner_steps=5, inner_learning_rate=0.01),
}
WAYS, SHOTS, QUERIES = 5, 1, 15


def _episodes(config, num_batches, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    tasks = config["meta_batch"] * num_batches
    shape = config["shape"]
    inputs = {
        "support_inputs": rng.uniform(
            size=(tasks, WAYS * SHOTS) + shape).astype("float32"),
        "support_labels": np.tile(
            np.repeat(np.arange(WAYS), SHOTS), (tasks, 1)).astype("int32"),
        "query_inputs": rng.uniform(
            size=(tasks, WAYS * QUERIES) + shape).astype("float32"),
    }
    labels = np.tile(np.repeat(np.arange(WAYS), QUERIES), (tasks, 1))
    return inputs, labels.astype("int32")


def write_result(path, script, fields):
    """Writes a benchmark's JSON: the command that made it, the machine,
    and `fields`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({
            "command": f"python benchmarks/{script} " + " ".join(
                sys.argv[1:]),
            "machine": {"cpu_count": os.cpu_count(),
                        "platform": platform.platform(),
                        "load_average_at_end": os.getloadavg()},
            **fields,
        }, f, indent=2)
    print(f"\nwrote {path}")


class _SteadyStateTimer:
    """Notes when batch `skip` starts, to time fit() past its setup."""

    def __new__(cls, skip):
        import keras

        class Timer(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                if batch == skip:
                    self.start = time.perf_counter()

        return Timer()


def _block(maml):
    import numpy as np

    np.asarray(maml.trainable_variables[0].value)


def _bare_step_seconds(maml, inputs, labels, meta_batch, steps):
    """Median-free timing of the compiled train_step alone."""
    import keras

    batch = ({k: v[:meta_batch] for k, v in inputs.items()},
             labels[:meta_batch])
    if keras.backend.backend() == "jax":
        import jax

        state = (
            [v.value for v in maml.trainable_variables],
            [v.value for v in maml.non_trainable_variables],
            [v.value for v in maml.optimizer.variables],
            [v.value for v in maml.metrics_variables],
        )
        step = jax.jit(maml.train_step, donate_argnums=0)
        logs, state = step(state, batch)  # compile
        jax.block_until_ready(state)
        start = time.perf_counter()
        for _ in range(steps):
            logs, state = step(state, batch)
        jax.block_until_ready(state)
        return (time.perf_counter() - start) / steps
    import tensorflow as tf

    step = tf.function(maml.train_step)
    batch = tf.nest.map_structure(tf.constant, batch)
    step(batch)
    start = time.perf_counter()
    for _ in range(steps):
        logs = step(batch)
    float(logs["loss"])
    return (time.perf_counter() - start) / steps


def measure(name, steps, steps_per_execution=1):
    import keras

    import keras_meta

    config = CONFIGS[name]
    keras.utils.set_random_seed(0)
    maml = keras_meta.MAML(
        keras_meta.models.conv4(num_outputs=WAYS, input_shape=config["shape"],
                                filters=config["filters"]),
        inner_learning_rate=config["inner_learning_rate"],
        num_inner_steps=config["inner_steps"],
    )
    maml.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution,
    )
    meta_batch = config["meta_batch"]
    inputs, labels = _episodes(config, steps)
    warm_tasks = 2 * meta_batch * steps_per_execution
    warm = {k: v[:warm_tasks] for k, v in inputs.items()}
    start = time.perf_counter()
    maml.fit(warm, labels[:warm_tasks], batch_size=meta_batch,
             epochs=1, verbose=0, shuffle=False)
    _block(maml)
    first_fit = time.perf_counter() - start
    skip = min(10, steps // 2)
    timer = _SteadyStateTimer(skip)
    start = time.perf_counter()
    maml.fit(inputs, labels, batch_size=meta_batch, epochs=1, verbose=0,
             shuffle=False, callbacks=[timer])
    _block(maml)
    end = time.perf_counter()
    fit_step = (end - timer.start) / (steps - skip)
    fit_total_step = (end - start) / steps
    bare_step = _bare_step_seconds(maml, inputs, labels, meta_batch, steps)
    return {
        "config": name,
        **{k: v for k, v in config.items() if k != "shape"},
        "input_shape": list(config["shape"]),
        "first_fit_2_steps_s": first_fit,
        "fit_steps_per_s": 1.0 / fit_step,
        "fit_steps_per_s_with_setup": 1.0 / fit_total_step,
        "bare_steps_per_s": 1.0 / bare_step,
        "steps_timed": steps,
        "steps_per_execution": steps_per_execution,
    }


def _device():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        from keras_meta.backend import jax as jax_backend

        device = jax.devices()[0]
        return (f"{device.platform}: {getattr(device, 'device_kind', '')}, "
                f"tasks by {jax_backend.task_mapping()}")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"gpu: {gpus[0].name}" if gpus else "cpu, tasks by tf.map_fn"


def worker(args):
    import keras

    rows = []
    for name in args.configs:
        row = measure(name, args.steps, args.steps_per_execution)
        row.update(backend=keras.backend.backend(), device=_device())
        rows.append(row)
        print(json.dumps(row), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+",
                        default=["tensorflow", "jax"],
                        choices=["tensorflow", "jax"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS),
                        choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=5,
                        help="meta-steps timed per measurement")
    parser.add_argument("--steps-per-execution", type=int, default=1,
                        help="passed to compile(); amortizes dispatch")
    parser.add_argument("--output",
                        default="benchmarks/results/meta_step.json")
    parser.add_argument("--worker", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    rows = []
    for backend in args.backends:
        command = [sys.executable, os.path.abspath(__file__), "--worker",
                   "--steps", str(args.steps), "--configs", *args.configs,
                   "--steps-per-execution", str(args.steps_per_execution)]
        env = {**os.environ, "KERAS_BACKEND": backend,
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        result = subprocess.run(command, env=env, capture_output=True,
                                text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stderr[-4000:])
            raise SystemExit(f"{backend} worker failed")
        rows += [json.loads(line) for line in result.stdout.splitlines()
                 if line.startswith("{")]
    header = (f"{'config':<14}{'backend':<12}{'spe':>4}{'first fit (s)':>14}"
              f"{'fit steps/s':>13}{'bare steps/s':>14}  device")
    print(header)
    for r in rows:
        print(f"{r['config']:<14}{r['backend']:<12}{r['steps_per_execution']:>4}"
              f"{r['first_fit_2_steps_s']:>14.1f}{r['fit_steps_per_s']:>13.2f}"
              f"{r['bare_steps_per_s']:>14.2f}  {r['device']}")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"benchmark": "maml_meta_step", "ways": WAYS,
                   "shots": SHOTS, "queries_per_class": QUERIES,
                   "platform": platform.platform(), "cpus": os.cpu_count(),
                   "rows": rows}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
