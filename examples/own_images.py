"""A few-shot classifier for your own images, in Python.

The same steps as `keras-meta train --data-dir my_images/` then
`keras-meta predict`, written out: split the folder's classes, meta-train
a Prototypical Network on episodes of the training classes keeping the
weights best on validation episodes, test it on classes it never saw, then
adapt it to new classes from one example each and classify new images.

    python examples/own_images.py --data-dir my_images/    # ~10 minutes
    python examples/own_images.py --tiny      # a generated folder, seconds

`my_images/` holds one sub-folder of images per class (any of PNG, JPEG,
BMP, GIF, WebP, TIFF; any size and mode).
"""

import argparse
import os
import tempfile

import keras
import numpy as np

import keras_meta
from keras_meta.testing import make_image_folder

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir", default=None)
parser.add_argument("--steps", type=int, default=1000)
parser.add_argument("--output-dir", default="own_images_run")
parser.add_argument("--tiny", action="store_true",
                    help="a generated folder of 12 classes and a few steps")
args = parser.parse_args()
episodes_per_test = 600
if args.tiny:
    args.data_dir = make_image_folder(
        tempfile.mkdtemp(), num_classes=12, images_per_class=8)
    args.steps, episodes_per_test = 6, 10
if args.data_dir is None:
    parser.error("pass --data-dir my_images/ (or --tiny)")

# 1. Seeded class splits, kept in splits.json: reruns reuse them.
splits = keras_meta.data.split_classes(
    args.data_dir, path=os.path.join(args.output_dir, "splits.json"))
index = keras_meta.data.load_class_index(args.data_dir, image_size=(32, 32))
print(index.description)
channels = index.examples.shape[-1]
by_name = {name: i for i, name in enumerate(index.class_names)}
train_index, validation_index, test_index = (
    index.subset([by_name[n] for n in splits[split]])
    for split in ("train", "validation", "test"))


def episodes(class_index, shots, count=None, batch_size=4, augment=None):
    return keras_meta.data.episodes_from_index(
        class_index, num_ways=min(5, class_index.num_classes),
        num_shots=shots, num_queries=min(15, class_index.counts.min() - shots),
        batch_size=batch_size, num_episodes=count, seed=0, augment=augment)


train = episodes(train_index, 1, augment=[keras.layers.RandomFlip()])
validation = episodes(validation_index, 1, count=50, batch_size=25)

# 2. A Prototypical Network on a Conv-4 encoder; `preprocessing` travels
# with the saved model so that `keras-meta predict` prepares images alike.
encoder = keras_meta.models.conv4(num_outputs=None,
                                  input_shape=(32, 32, channels))
learner = keras_meta.ProtoNet(
    encoder, num_ways=20, preprocessing={
        "kind": "image", "image_size": [32, 32], "channels": int(channels)})
learner.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"])
best = os.path.join(args.output_dir, "best.weights.h5")
learner.fit(train, epochs=2 if args.tiny else 10,
            steps_per_epoch=max(1, args.steps // 10), validation_data=validation,
            callbacks=[keras.callbacks.ModelCheckpoint(
                best, monitor="val_accuracy", mode="max",
                save_best_only=True, save_weights_only=True)])
learner.load_weights(best)

# 3. Test classes never trained on: accuracy with a 95% confidence interval.
for shots in (1, 5):
    if test_index.counts.min() > shots:
        scores = learner.evaluate(
            episodes(test_index, shots, count=episodes_per_test,
                     batch_size=50), return_dict=True, verbose=0)
        print(f"test, {shots}-shot: {100 * scores['accuracy']:.1f} +- "
              f"{100 * scores['accuracy_ci95']:.1f} %")
learner.save(os.path.join(args.output_dir, "model.keras"))

# 4. New classes from one example each: adapt, then predict. The adapted
# model is an ordinary Keras model (save it, export it).
support_dir = os.path.join(args.output_dir, "support")
for name in splits["test"][:3]:
    folder = os.path.join(support_dir, name.replace("/", "_"))
    os.makedirs(folder, exist_ok=True)
    first = sorted(os.listdir(os.path.join(args.data_dir, name)))[0]
    with open(os.path.join(args.data_dir, name, first), "rb") as source:
        with open(os.path.join(folder, first), "wb") as copy:
            copy.write(source.read())
support, labels, names = keras_meta.data.load_support(
    support_dir, preprocessing=learner.preprocessing)
adapted = learner.adapt(support, labels)
queries, files = keras_meta.data.load_images(
    [os.path.join(args.data_dir, splits["test"][0])],
    preprocessing=learner.preprocessing)
logits = adapted.predict(queries, verbose=0)[:, :len(names)]
for path, row in zip(files[:5], logits):
    print(f"{os.path.basename(path)}: {names[int(np.argmax(row))]}")
