"""What is evaluated is what is deployed, measured for every learner.

For each learner and `batch_norm` mode (Conv -> BatchNorm -> ReLU ->
MaxPool -> Dropout -> Dense encoder, 3-way 2-shot 3-query episodes, after
one training step on 4 tasks), prints the largest difference between
`adapt(support).predict(queries)` and `predict(episode)`, relative to the
largest prediction, over 4 tasks; in the inductive mode also the
difference between a query predicted alone and in its batch; and, as the
"before" column, the mismatch of the earlier semantics (transductive
`predict()` against an adapted model holding the support statistics).
Writes JSON.

    python benchmarks/deployment_consistency.py
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_meta import testing  # noqa: E402

NUM_WAYS = 3


def _gap(a, b, scale):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / scale)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "deployment_consistency.json"))
    args = parser.parse_args()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rows = []
    for name, factory, modes in testing.every_learner(NUM_WAYS):
        learners = {}
        for mode in modes:
            keras.utils.set_random_seed(0)
            learner = factory(mode)
            channels = learner.model.input_shape[-1]
            inputs, labels = testing.toy_episodes(
                num_tasks=4, num_ways=NUM_WAYS, num_shots=2, num_queries=3,
                image_shape=(6, 6, channels))
            learner.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
            # One step of the whole meta-batch moves every weight.
            learner.fit(inputs, labels, epochs=1, batch_size=4, verbose=0)
            learners[mode] = learner
            predictions = learner.predict(inputs, verbose=0)
            scale = float(np.max(np.abs(predictions)))
            gaps, alone = [], []
            for task in range(len(labels)):
                adapted = learner.adapt(inputs["support_inputs"][task],
                                        inputs["support_labels"][task])
                queries = inputs["query_inputs"][task]
                deployed = adapted.predict(queries, batch_size=len(queries),
                                           verbose=0)
                gaps.append(_gap(deployed, predictions[task], scale))
                if mode == "inductive":
                    alone.append(_gap(adapted.predict(queries[:1], verbose=0),
                                      deployed[:1], scale))
            row = {"learner": name, "batch_norm": mode,
                   "adapt_vs_predict": max(gaps),
                   "one_query_vs_batch": max(alone) if alone else None}
            rows.append(row)
            print(f"{name:<12} {mode:<13} adapt vs predict "
                  f"{row['adapt_vs_predict']:.1e}"
                  + (f"   one query vs batch {row['one_query_vs_batch']:.1e}"
                     if alone else ""), flush=True)
        # The earlier semantics: transductive predictions, deployed with
        # the support statistics (today's inductive adapted model), from
        # the same trained weights.
        transductive = learners["transductive"]
        inductive = factory("inductive")
        inductive.compile(loss=loss)
        inductive.set_weights(transductive.get_weights())
        predictions = transductive.predict(inputs, verbose=0)
        scale = float(np.max(np.abs(predictions)))
        before = max(
            _gap(inductive.adapt(inputs["support_inputs"][t],
                                 inputs["support_labels"][t]).predict(
                inputs["query_inputs"][t], verbose=0), predictions[t], scale)
            for t in range(len(labels)))
        rows.append({"learner": name, "batch_norm": "before",
                     "adapt_vs_predict": before, "one_query_vs_batch": None})
        print(f"{name:<12} {'before':<13} adapt vs predict {before:.1e}",
              flush=True)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"rows": rows}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
