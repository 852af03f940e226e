"""Saves learners on one Keras backend and checks them on another.

    KERAS_BACKEND=jax python tests/compatibility/cross_backend.py save DIR
    KERAS_BACKEND=torch python tests/compatibility/cross_backend.py check DIR

`save` trains one learner per family (MAML with BatchNormalization,
ProtoNet, CNP) for two steps and writes `NAME.keras` and `NAME.npz`
(episodes, `predict()` and `adapt()` predictions on the first task).
`check` loads each file and prints, as JSON, the largest absolute
difference of its predictions from the stored ones.
"""

import json
import os
import sys

import keras
import numpy as np

import keras_meta
from keras_meta import testing

NAMES = ("maml", "protonet", "cnp")


def _learners():
    episodes = testing.toy_episodes(num_tasks=2, num_ways=3, num_shots=2,
                                    num_queries=2, seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, (2, 10, 1)).astype("float32")
    y = np.sin(x) + 0.1 * x
    sinusoid = ({"support_inputs": x[:, :5], "support_labels": y[:, :5],
                 "query_inputs": x[:, 5:]}, y[:, 5:])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    yield "maml", episodes, loss, keras_meta.MAML(
        testing.tiny_classifier(num_ways=3, normalization="batch"),
        inner_learning_rate=0.3)
    yield "protonet", episodes, loss, keras_meta.ProtoNet(
        testing.tiny_classifier(num_ways=3), num_ways=3)
    encoder, decoder = keras_meta.models.neural_process_networks(
        representation_dim=8, hidden_units=(8,), seed=0)
    yield ("cnp", sinusoid, keras_meta.losses.GaussianNegativeLogLikelihood(),
           keras_meta.CNP(decoder, encoder=encoder))


def save(folder):
    for name, (inputs, labels), loss, learner in _learners():
        learner.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
        learner.fit(inputs, labels, epochs=2, verbose=0)
        learner.save(os.path.join(folder, f"{name}.keras"))
        adapted = learner.adapt(inputs["support_inputs"][0],
                                inputs["support_labels"][0])
        np.savez(
            os.path.join(folder, f"{name}.npz"),
            predictions=keras.ops.convert_to_numpy(
                learner.predict(inputs, verbose=0)),
            adapted_predictions=keras.ops.convert_to_numpy(
                adapted.predict(inputs["query_inputs"][0], verbose=0)),
            **{f"inputs_{k}": np.asarray(v) for k, v in inputs.items()})


def check(folder):
    errors = {}
    for name in NAMES:
        stored = np.load(os.path.join(folder, f"{name}.npz"))
        inputs = {key[len("inputs_"):]: stored[key] for key in stored.files
                  if key.startswith("inputs_")}
        learner = keras.models.load_model(
            os.path.join(folder, f"{name}.keras"))
        predictions = keras.ops.convert_to_numpy(
            learner.predict(inputs, verbose=0))
        adapted = learner.adapt(inputs["support_inputs"][0],
                                inputs["support_labels"][0])
        adapted = keras.ops.convert_to_numpy(
            adapted.predict(inputs["query_inputs"][0], verbose=0))
        errors[name] = max(
            float(np.max(np.abs(predictions - stored["predictions"]))),
            float(np.max(np.abs(adapted - stored["adapted_predictions"]))))
    print(json.dumps({"backend": keras.backend.backend(), "errors": errors}))


if __name__ == "__main__":
    {"save": save, "check": check}[sys.argv[1]](sys.argv[2])
