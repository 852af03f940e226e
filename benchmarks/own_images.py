"""The own-images quick start, timed end to end on 2 CPU cores.

Runs what the README's quick start tells a new user to run, on a folder
the library has never been given:

- `--source omniglot`: the two Omniglot background subsets
  (`images_background_small1.zip`, `images_background_small2.zip` in
  `--data-dir`) merged into one plain folder `alphabet/character/` of 242
  characters of 8 alphabets (the subsets share Greek and Latin), each
  character's 20 drawings re-saved in turn as bilevel PNG, grayscale JPEG,
  palette GIF, BMP, RGBA PNG (transparent background) and WebP, at sizes
  from 60 to 105 pixels;
- `--source generated`: `keras_meta.testing.make_image_folder`, 100
  classes of 20 images mixing PNG (grayscale, grayscale+alpha, RGBA,
  16-bit), JPEG, BMP, GIF and WebP at 48-160 pixels.

Then `keras-meta train --data-dir FOLDER` with its defaults and
`keras-meta predict` on a support folder of new classes, each in a fresh
process, timing both. Writes `benchmarks/results/own_images_SOURCE.json`.

    python benchmarks/own_images.py --source omniglot \\
        --data-dir ../shared/data/omniglot
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

_FORMATS = (("png", "1"), ("jpg", "L"), ("gif", "P"), ("bmp", "L"),
            ("png", "RGBA"), ("webp", "L"))


def _omniglot_folder(data_dir, target):
    """The background subsets as one mixed-format folder; returns the
    number of images written."""
    from PIL import Image

    from keras_meta.experiments import omniglot

    rng = np.random.default_rng(0)
    written = 0
    for subset in omniglot.find_subsets(data_dir):
        for root, dirs, files in sorted(os.walk(subset)):
            dirs.sort()
            images = sorted(f for f in files if f.endswith(".png"))
            if not images:
                continue
            character = os.path.relpath(root, subset)
            folder = os.path.join(target, character)
            if os.path.isdir(folder):
                continue  # Greek and Latin are in both subsets.
            os.makedirs(folder)
            for k, name in enumerate(images):
                extension, mode = _FORMATS[k % len(_FORMATS)]
                with Image.open(os.path.join(root, name)) as image:
                    size = int(rng.integers(60, 106))
                    image = image.convert("L").resize((size, size))
                    if mode == "RGBA":
                        # Ink opaque, paper transparent.
                        ink = np.asarray(image) < 128
                        rgba = np.zeros(ink.shape + (4,), np.uint8)
                        rgba[..., 3] = np.where(ink, 255, 0)
                        image = Image.fromarray(rgba, "RGBA")
                    elif mode != "L":
                        image = image.convert(mode)
                    image.save(os.path.join(
                        folder, f"{os.path.splitext(name)[0]}.{extension}"))
                    written += 1
    return written


def _support_folder(images_dir, splits, target, shots=1):
    """A support folder of the first `shots` images of each test class,
    and the query files: the other images of those classes."""
    queries = []
    for name in splits["test"]:
        files = sorted(os.listdir(os.path.join(images_dir, name)))
        folder = os.path.join(target, name.replace("/", "_"))
        os.makedirs(folder)
        for f in files[:shots]:
            shutil.copy(os.path.join(images_dir, name, f), folder)
        queries += [(os.path.join(images_dir, name, f),
                     name.replace("/", "_")) for f in files[shots:]]
    return queries


def _run(command):
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if completed.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=("omniglot", "generated"),
                        default="generated")
    parser.add_argument("--data-dir", default="../shared/data/omniglot")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--output", default=None)
    parser.add_argument("--predict-classes", type=int, default=5,
                        help="test classes in the predict check")
    args = parser.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix="own_images_")
    images = os.path.join(work, "images")
    if os.path.isdir(images):
        shutil.rmtree(images)
    if args.source == "omniglot":
        count = _omniglot_folder(args.data_dir, images)
    else:
        from keras_meta import testing

        testing.make_image_folder(images, num_classes=100,
                                  images_per_class=20, sizes=(48, 160))
        count = 2000
    run_dir = os.path.join(work, "run")
    keras_meta = [sys.executable, "-m", "keras_meta"]
    train_out, train_seconds = _run(
        keras_meta + ["train", "--data-dir", images, "--output-dir",
                      run_dir, "--verbose", "2"])
    print(train_out)
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(run_dir, "splits.json")) as f:
        splits = json.load(f)
    # `keras-meta predict`: one example of each of a few test classes as
    # the support folder, their other images as queries.
    splits = dict(splits, test=splits["test"][:args.predict_classes])
    support = os.path.join(work, "support")
    if os.path.isdir(support):
        shutil.rmtree(support)
    queries = _support_folder(images, splits, support)
    predictions = os.path.join(work, "predictions.csv")
    _, predict_seconds = _run(
        keras_meta + ["predict", os.path.join(run_dir, "model.keras"),
                      "--support", support, "--output", predictions]
        + [path for path, _ in queries])
    with open(predictions) as f:
        rows = [line.rstrip("\n").split(",") for line in f][1:]
    truth = dict(queries)
    correct = [truth[path] == name for path, name, _ in rows]
    summary = {
        "command": "python " + " ".join(sys.argv),
        "source": args.source,
        "images": count,
        "train_command": "keras-meta train --data-dir FOLDER",
        "train_seconds": train_seconds,
        # Inside the command: training, testing and what came before.
        "train_command_seconds": results["seconds"],
        "test": results["test"],
        "config": results["config"],
        "best_epoch": results["best_epoch"],
        "predict": {
            "command": "keras-meta predict model.keras --support SUPPORT "
                       "QUERIES...",
            "classes": len(splits["test"]), "shots": 1,
            "queries": len(rows),
            "accuracy": float(np.mean(correct)),
            "seconds": predict_seconds},
    }
    output = args.output or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results",
        f"own_images_{args.source}.json")
    with open(output, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"train: {train_seconds / 60:.1f} min; predict: "
          f"{predict_seconds:.0f} s, {100 * summary['predict']['accuracy']:.1f}"
          f"% of {len(rows)} queries right ({len(splits['test'])}-way "
          f"1-shot); wrote {output}")


if __name__ == "__main__":
    main()
