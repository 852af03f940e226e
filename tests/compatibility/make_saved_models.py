"""Writes the `.keras` files that `saved_models_test.py` loads.

Run once with the release whose files must keep loading (keras_meta 0.1.0,
before the package was rearranged), from the repository root:

    python tests/compatibility/make_saved_models.py

For each learner family it trains a tiny learner for two steps, saves it,
and stores the episodes and the predictions it made (`predict()` and
`adapt()` on the first task) beside it.
"""

import os

import keras
import numpy as np

import keras_meta
from keras_meta import testing

HERE = os.path.dirname(os.path.abspath(__file__))


def _learners():
    episodes = testing.toy_episodes(num_tasks=2, num_ways=3, num_shots=2,
                                    num_queries=2, seed=0)
    sinusoid = next(iter(keras_meta.data.sinusoid(
        num_shots=5, num_queries=5, num_tasks=2, batch_size=2, seed=0)))
    sinusoid = tuple(np.asarray(v) if not isinstance(v, dict)
                     else {k: np.asarray(x) for k, x in v.items()}
                     for v in sinusoid)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    yield "maml", episodes, loss, keras_meta.MAML(
        testing.tiny_classifier(num_ways=3), inner_learning_rate=0.3)
    yield "protonet", episodes, loss, keras_meta.ProtoNet(
        testing.tiny_classifier(num_ways=3), num_ways=3)
    encoder, decoder = keras_meta.models.neural_process_networks(
        representation_dim=8, hidden_units=(8,), seed=0)
    yield ("cnp", sinusoid, keras_meta.losses.GaussianNegativeLogLikelihood(),
           keras_meta.CNP(decoder, encoder=encoder))


def main():
    keras.utils.set_random_seed(0)
    for name, (inputs, labels), loss, learner in _learners():
        learner.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
        learner.fit(inputs, labels, epochs=2, batch_size=2, verbose=0)
        predictions = learner.predict(inputs, verbose=0)
        adapted = learner.adapt(inputs["support_inputs"][0],
                                inputs["support_labels"][0])
        adapted_predictions = adapted.predict(inputs["query_inputs"][0],
                                              verbose=0)
        learner.save(os.path.join(HERE, f"{name}.keras"))
        np.savez(os.path.join(HERE, f"{name}.npz"),
                 labels=labels, predictions=predictions,
                 adapted_predictions=adapted_predictions,
                 **{f"inputs_{k}": v for k, v in inputs.items()})
        print(f"wrote {name}.keras ({keras_meta.__version__})")


if __name__ == "__main__":
    main()
