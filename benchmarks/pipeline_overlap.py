"""Does the episode pipeline keep up with a mini-ImageNet meta-step?

Second-order MAML (Conv-4-32, 84x84x3, 5-way 1-shot, 15 queries per
class, meta-batch 4, five inner steps, TensorFlow), timed three ways, each
in a fresh process, alternating, `--repeats` times:

- `bare`: the compiled `train_step` called on one batch held in memory;
- `fit_fixed_batch`: `fit()` on that batch repeated (`fit()`'s own cost);
- `fit_episodes`: `fit()` on `keras_meta.data.episodes` drawing new
  episodes from an in-memory set of 64 classes x 100 uint8 images (the
  pipeline a user trains with).

Each times `--steps` meta-steps after two warm-up steps; the table gives
median meta-steps per second and the ratio to `bare`. Prints a table and
writes JSON.

    python benchmarks/pipeline_overlap.py
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from meta_step import _SteadyStateTimer
from meta_step import write_result

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODES = ("bare", "fit_fixed_batch", "fit_episodes")
WAYS, SHOTS, QUERIES, META_BATCH = 5, 1, 15, 4
HERE = os.path.dirname(os.path.abspath(__file__))


def _episodes(num_classes=64, per_class=100, seed=0):
    import numpy as np
    import tensorflow as tf

    from keras_meta import data

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num_classes * per_class, 84, 84, 3),
                          dtype=np.uint8)
    labels = np.repeat(np.arange(num_classes), per_class)
    source = tf.data.Dataset.from_tensor_slices((images, labels))
    return data.episodes(source, num_ways=WAYS, num_shots=SHOTS,
                         num_queries=QUERIES, batch_size=META_BATCH, seed=0)


def _learner():
    import keras

    import keras_meta

    keras.utils.set_random_seed(0)
    maml = keras_meta.MAML(
        keras_meta.models.conv4(num_outputs=WAYS, input_shape=(84, 84, 3),
                                filters=32),
        inner_learning_rate=0.01, num_inner_steps=5)
    maml.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return maml


def worker(mode, steps):
    import numpy as np
    import tensorflow as tf

    maml = _learner()
    dataset = _episodes()
    batch = next(iter(dataset))
    warm = 2
    if mode == "bare":
        step = tf.function(maml.train_step)
        for _ in range(warm):
            logs = step(batch)
        float(logs["loss"])
        start = time.perf_counter()
        for _ in range(steps):
            logs = step(batch)
        float(logs["loss"])
        seconds = time.perf_counter() - start
    else:
        if mode == "fit_fixed_batch":
            dataset = tf.data.Dataset.from_tensors(batch).repeat()
        timer = _SteadyStateTimer(warm)
        maml.fit(dataset, epochs=1, steps_per_epoch=warm + steps, verbose=0,
                 callbacks=[timer])
        np.asarray(maml.trainable_variables[0].value)
        seconds = time.perf_counter() - timer.start
    return {"mode": mode, "steps_per_s": steps / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(
        HERE, "results", "pipeline_overlap.json"))
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.steps)),
              flush=True)
        return
    runs = {mode: [] for mode in MODES}
    for repeat in range(args.repeats):
        for mode in MODES:
            process = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", mode,
                 "--steps", str(args.steps)],
                capture_output=True, text=True)
            lines = [line for line in process.stdout.splitlines()
                     if line.startswith("RESULT ")]
            if not lines:
                raise RuntimeError(f"{mode} failed:\n{process.stderr[-3000:]}")
            result = json.loads(lines[-1][len("RESULT "):])
            runs[mode].append(result["steps_per_s"])
            print(f"repeat {repeat + 1} {mode}: "
                  f"{result['steps_per_s']:.3f} meta-steps/s", flush=True)
    bare = statistics.median(runs["bare"])
    rows = [{"mode": mode, "steps_per_s": statistics.median(values),
             "ratio_to_bare": statistics.median(values) / bare,
             "runs": values} for mode, values in runs.items()]
    print("\n| mode | meta-steps/s | ratio to bare |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {row['mode']} | {row['steps_per_s']:.3f} | "
              f"{row['ratio_to_bare']:.2f} |")
    write_result(args.output, "pipeline_overlap.py", {
        "config": {"ways": WAYS, "shots": SHOTS, "queries": QUERIES,
                   "meta_batch": META_BATCH, "inner_steps": 5,
                   "image_shape": [84, 84, 3], "filters": 32,
                   "steps": args.steps, "repeats": args.repeats},
        "rows": rows,
    })


if __name__ == "__main__":
    main()
