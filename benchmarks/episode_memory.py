"""Resident memory of the episode pipeline over an in-memory index.

`episodes_from_index` reads the index's images inside a `tf.data` function.
Captured as a constant, the array is copied into the constant, into the
function's graph, and for a while once more when the dataset first runs;
captured as a variable it is copied once, but episodes are drawn more
slowly. `keras_meta.data.episode_sources._captured_array` chooses a
variable from `VARIABLE_CAPTURE_BYTES` (128 MB) on; this benchmark forces
each mode. Each mode runs in a fresh process, alternating, `--repeats`
times, over a mini-ImageNet-shaped index of random `uint8` pixels
(`--classes` classes of 600 images of 84x84x3; the real training split
has 64). Reports the medians of the resident
memory added by building the dataset and by its first batch, and the
peak over both (Linux's VmHWM, restarted before each; all beyond the
NumPy index itself), and episodes per second (5-way 1-shot, 15 queries,
batches of 8). Prints a table and writes JSON.

    python benchmarks/episode_memory.py
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODES = ("constant", "variable")


def _memory_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak():
    # Linux: the peak resident size (VmHWM) restarts from the current one.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _worker(mode, classes, num_batches):
    import numpy as np

    from keras_meta import data
    from keras_meta.data import episode_sources as module

    module.VARIABLE_CAPTURE_BYTES = 0 if mode == "variable" else float("inf")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), 600)
    index = data.ClassIndex(
        rng.integers(0, 256, (len(labels), 84, 84, 3), dtype=np.uint8),
        labels)
    before = _memory_mb("VmRSS")
    _reset_peak()
    dataset = data.episodes_from_index(
        index, num_ways=5, num_shots=1, num_queries=15, batch_size=8, seed=0)
    built = _memory_mb("VmRSS")
    build_peak = _memory_mb("VmHWM")
    _reset_peak()
    iterator = iter(dataset)
    next(iterator)
    first = _memory_mb("VmRSS")
    first_peak = _memory_mb("VmHWM")
    start = time.perf_counter()
    for _ in range(num_batches):
        next(iterator)
    rate = 8 * num_batches / (time.perf_counter() - start)
    print(json.dumps({
        "index_mb": index.examples.nbytes / 2**20,
        "build_mb": built - before, "first_batch_mb": first - built,
        "total_mb": first - before,
        "peak_mb": max(build_peak, first_peak) - before,
        "episodes_per_second": rate}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "episode_memory.json"))
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.classes, args.batches)
        return

    runs = {mode: [] for mode in MODES}
    for repeat in range(args.repeats):
        for mode in MODES:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", mode,
                 "--classes", str(args.classes),
                 "--batches", str(args.batches)],
                check=True, capture_output=True, text=True).stdout
            runs[mode].append(json.loads(out.strip().splitlines()[-1]))
            print(f"repeat {repeat + 1}, {mode}: {runs[mode][-1]}",
                  flush=True)
    keys = ("build_mb", "first_batch_mb", "total_mb", "peak_mb",
            "episodes_per_second")
    medians = {mode: {k: statistics.median(r[k] for r in rows)
                      for k in keys} for mode, rows in runs.items()}
    index_mb = runs["constant"][0]["index_mb"]
    print()
    print(f"index {index_mb:.0f} MB; resident MB added (median of "
          f"{args.repeats})")
    print(f"{'captured as':<12}{'build':>8}{'first batch':>13}{'total':>8}"
          f"{'peak':>8}{'peak / index':>14}{'episodes/s':>12}")
    for mode, m in medians.items():
        print(f"{mode:<12}{m['build_mb']:>8.0f}{m['first_batch_mb']:>13.0f}"
              f"{m['total_mb']:>8.0f}{m['peak_mb']:>8.0f}"
              f"{m['peak_mb'] / index_mb:>14.2f}"
              f"{m['episodes_per_second']:>12.0f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"command": "python " + " ".join(sys.argv),
                   "args": vars(args), "index_mb": index_mb,
                   "medians": medians, "runs": runs}, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
