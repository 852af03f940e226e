"""Episodes per second from `keras_meta.data.episodes`.

Omniglot-shaped episodes (5-way 1-shot, 15 queries, 28x28x1) and
mini-ImageNet-shaped ones (5-way 5-shot, 15 queries, 84x84x3), from an
in-memory source and from an image folder (the real Omniglot background
subset when `../shared/data/omniglot/` is present, else generated images).
Prints a table and writes JSON.

    python benchmarks/episode_throughput.py
"""

import argparse
import json
import os
import tempfile
import time
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_meta import data  # noqa: E402

OMNIGLOT_ZIP = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "omniglot",
    "images_background_small1.zip")


def in_memory_source(num_classes, per_class, shape, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(num_classes * per_class,) + shape).astype(
        "float32")
    labels = np.repeat(np.arange(num_classes), per_class)
    return tf.data.Dataset.from_tensor_slices((images, labels))


def omniglot_folder(workdir):
    if os.path.exists(OMNIGLOT_ZIP):
        with zipfile.ZipFile(OMNIGLOT_ZIP) as archive:
            archive.extractall(workdir)
        return os.path.join(workdir, "images_background_small1"), "omniglot small1"
    rng = np.random.default_rng(0)
    for c in range(40):
        folder = os.path.join(workdir, f"alphabet{c // 10}", f"character{c}")
        os.makedirs(folder)
        for k in range(20):
            pixels = (rng.uniform(size=(105, 105, 1)) > 0.5).astype(np.uint8)
            tf.io.write_file(os.path.join(folder, f"{k}.png"),
                             tf.io.encode_png(pixels * 255))
    return workdir, "generated 40 classes"


def throughput(dataset, batch_size, seconds):
    iterator = iter(dataset)
    next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        count += batch_size
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output",
                        default="benchmarks/results/episode_throughput.json")
    args = parser.parse_args()
    rows = []
    configs = {
        "omniglot 5w1s15q 28x28x1": dict(ways=5, shots=1, queries=15,
                                         shape=(28, 28, 1), classes=1200,
                                         per_class=20),
        "mini-imagenet 5w5s15q 84x84x3": dict(ways=5, shots=5, queries=15,
                                              shape=(84, 84, 3), classes=64,
                                              per_class=600),
    }
    for name, c in configs.items():
        start = time.perf_counter()
        dataset = data.episodes(
            in_memory_source(c["classes"], c["per_class"], c["shape"]),
            num_ways=c["ways"], num_shots=c["shots"], num_queries=c["queries"],
            batch_size=args.batch_size, seed=0)
        setup = time.perf_counter() - start
        rows.append({"episodes": name, "source": "in memory",
                     "setup_s": setup,
                     "episodes_per_s": throughput(dataset, args.batch_size,
                                                  args.seconds)})
    with tempfile.TemporaryDirectory() as workdir:
        folder, label = omniglot_folder(workdir)
        start = time.perf_counter()
        dataset = data.episodes(folder, num_ways=5, num_shots=1,
                                num_queries=15, batch_size=args.batch_size,
                                image_size=(28, 28), rotations=True, seed=0)
        setup = time.perf_counter() - start
        rows.append({"episodes": "omniglot 5w1s15q 28x28x1 +rotations",
                     "source": f"image folder ({label})", "setup_s": setup,
                     "episodes_per_s": throughput(dataset, args.batch_size,
                                                  args.seconds)})
    print(f"{'episodes':<38}{'source':<32}{'setup (s)':>10}{'episodes/s':>12}")
    for r in rows:
        print(f"{r['episodes']:<38}{r['source']:<32}{r['setup_s']:>10.1f}"
              f"{r['episodes_per_s']:>12.0f}")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"benchmark": "episode_throughput", "cpus": os.cpu_count(),
                   "batch_size": args.batch_size, "rows": rows}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
