"""Memory, setup time and episode rate of in-memory image storage.

Writes two image folders of random PNGs, one shaped like mini-ImageNet
(84x84 RGB, `--mini-classes` classes of 600 images; the real one has 100)
and one like Omniglot (28x28 grayscale, 20 images per class), then, each
in a fresh process, loads them with `keras_meta.data.load_class_index`
under `storage="float32"` (every image converted up front, as before
`storage` existed) and `storage="auto"` (8-bit pixels kept as `uint8`,
converted per episode), alternating, `--repeats` times each. Reports the
medians of: the index's bytes, the process's peak resident memory, the
setup seconds, and episodes per second through `episodes_from_index`
(5-way 1-shot 15 queries, batches of 32). Prints a table and writes JSON.

    python benchmarks/image_storage.py
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _write_folder(directory, num_classes, per_class, shape, seed):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for c in range(num_classes):
        folder = os.path.join(directory, f"class{c:04d}")
        os.makedirs(folder)
        for k in range(per_class):
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            tf.io.write_file(os.path.join(folder, f"{k}.png"),
                             tf.io.encode_png(pixels))


def _worker(folder, storage, num_batches):
    from keras_meta import data

    start = time.perf_counter()
    index = data.load_class_index(folder, storage=storage)
    setup = time.perf_counter() - start
    dataset = data.episodes_from_index(
        index, num_ways=5, num_shots=1, num_queries=15, batch_size=32,
        seed=0)
    iterator = iter(dataset)
    next(iterator)  # Tracing and the first batch.
    start = time.perf_counter()
    for _ in range(num_batches):
        next(iterator)
    rate = 32 * num_batches / (time.perf_counter() - start)
    print(json.dumps({
        "index_bytes": int(index.examples.nbytes),
        "dtype": str(index.examples.dtype),
        "setup_seconds": setup,
        "episodes_per_second": rate,
        # Linux reports kilobytes.
        "peak_rss_bytes": resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mini-classes", type=int, default=16)
    parser.add_argument("--omniglot-classes", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-batches", type=int, default=100)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "image_storage.json"))
    parser.add_argument("--worker", nargs=2, metavar=("FOLDER", "STORAGE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(*args.worker, args.num_batches)
    if min(args.mini_classes, args.omniglot_classes) < 5:
        parser.error("5-way episodes need at least 5 classes per set")

    rows = []
    with tempfile.TemporaryDirectory() as root:
        sets = {
            "mini-ImageNet-shaped (84x84x3)": (
                args.mini_classes, 600, (84, 84, 3)),
            "Omniglot-shaped (28x28x1)": (
                args.omniglot_classes, 20, (28, 28, 1)),
        }
        for seed, (name, (classes, per_class, shape)) in enumerate(
                sets.items()):
            folder = os.path.join(root, str(seed))
            start = time.perf_counter()
            _write_folder(folder, classes, per_class, shape, seed)
            print(f"{name}: {classes * per_class} images written in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
            runs = {"float32": [], "auto": []}
            for _ in range(args.repeats):
                for storage in runs:
                    output = subprocess.run(
                        [sys.executable, __file__, "--worker", folder,
                         storage, "--num-batches", str(args.num_batches)],
                        check=True, capture_output=True, text=True).stdout
                    runs[storage].append(json.loads(
                        output.strip().splitlines()[-1]))
            for storage, measured in runs.items():
                row = {"data": name, "images": classes * per_class,
                       "storage": storage, "dtype": measured[0]["dtype"],
                       "runs": measured}
                for key in ("index_bytes", "peak_rss_bytes",
                            "setup_seconds", "episodes_per_second"):
                    values = sorted(m[key] for m in measured)
                    row[key] = values[len(values) // 2]
                rows.append(row)

    print()
    print(f"medians of {args.repeats} fresh processes each, alternating")
    print(f"{'data':<32}{'storage':>9}{'index MB':>10}{'peak RSS MB':>13}"
          f"{'setup s':>9}{'episodes/s':>12}")
    for row in rows:
        print(f"{row['data']:<32}{row['storage']:>9}"
              f"{row['index_bytes'] / 2**20:>10.0f}"
              f"{row['peak_rss_bytes'] / 2**20:>13.0f}"
              f"{row['setup_seconds']:>9.1f}"
              f"{row['episodes_per_second']:>12.0f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"args": vars(args), "rows": rows}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
