"""Cold-start recommendation: a recommender that adapts to a new user from
a few ratings (MeLU), with the keras_meta Python API.

Each MovieLens user is a task: some of their ratings are the support set,
10 held-out ratings the query set. MeLU (Lee et al., 2019) meta-learns a
field-embedding recommender whose decision layers adapt to a user in one
gradient step: `keras_meta.ANIL` with those layers as the head.

Needs MovieLens: the copy inside the recbole wheel
(`pip install --no-deps recbole==1.2.1`, no torch needed) or a folder of
ml-100k / ml-1m files. `--protocol mamo` uses MAMO's tasks instead (each
user's first 20 ratings, 15 support and 5 query, states by time and by
item popularity, each state scored on its own query ratings):

    python examples/cold_start_recommendation.py [--data-dir ml-100k/]
    python examples/cold_start_recommendation.py --protocol mamo
"""

import argparse

import keras
import numpy as np

import keras_meta

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir", default=None)
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--protocol", choices=("melu", "mamo"), default="melu")
args = parser.parse_args()
keras.utils.set_random_seed(0)

# User tasks with MeLU's protocol: users with 13-100 ratings, 10 queries,
# users split 8:1:1, the newest movies held out as new items.
tasks = keras_meta.recommendation.movielens_cold_start(
    args.data_dir, protocol=args.protocol, seed=0)
print(tasks.description)
k = 5 if args.protocol == "melu" else 3  # fewer than the query ratings

model = keras_meta.recommendation.field_recommender(tasks.features, seed=0)
melu = keras_meta.ANIL(
    model, head=keras_meta.recommendation.field_recommender_head(model),
    inner_learning_rate=0.1, num_inner_steps=1)
melu.compile(
    optimizer=keras.optimizers.Adam(1e-3), loss="mse",
    metrics=[keras.metrics.MeanAbsoluteError(),
             keras.metrics.RootMeanSquaredError(),
             keras_meta.recommendation.NormalizedDCG(k=k),
             keras_meta.recommendation.PrecisionAtK(k=k)])
melu.fit(
    tasks.episodes("train", batch_size=32), steps_per_epoch=50,
    epochs=args.epochs,
    validation_data=tasks.episodes(tasks.validation_state),
    callbacks=[keras.callbacks.EarlyStopping(
        monitor="val_mean_absolute_error", patience=8,
        restore_best_weights=True)],
    verbose=2)

# Metrics with 95% confidence intervals over users. (In MAMO's states only
# some query ratings count; ranking is reported where all of them do.)
for state in tasks.evaluation_states:
    logs = melu.evaluate(tasks.episodes(state), verbose=0, return_dict=True)
    line = (f"{state:>15}: MAE {logs['mean_absolute_error']:.3f} +- "
            f"{logs['mean_absolute_error_ci95']:.3f}")
    if (tasks.states[state]["query_weights"] == 1).all():
        line += (f", nDCG@{k} {logs[f'ndcg_at_{k}']:.3f} +- "
                 f"{logs[f'ndcg_at_{k}_ci95']:.3f}, precision@{k} "
                 f"{logs[f'precision_at_{k}']:.3f} +- "
                 f"{logs[f'precision_at_{k}_ci95']:.3f}")
    print(line)

# A new user: adapt to their support ratings, get an ordinary Keras model,
# and rank their held-out movies.
new_users = tasks.states["user_cold"]  # new users, known movies
rated = new_users["support_weights"][0] > 0
recommender = melu.adapt(new_users["support_inputs"][0][rated],
                         new_users["support_labels"][0][rated])
scores = recommender.predict(new_users["query_inputs"][0], verbose=0)[:, 0]
order = np.argsort(-scores)
print("predicted:", np.round(scores[order], 2))
print("actual:   ", new_users["query_labels"][0][order, 0])
