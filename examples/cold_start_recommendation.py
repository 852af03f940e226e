"""Cold-start recommendation: a recommender that adapts to a new user from
a few ratings (MeLU), with the keras_meta Python API.

Each MovieLens user is a task: some of their ratings are the support set,
10 held-out ratings the query set. MeLU (Lee et al., 2019) meta-learns a
field-embedding recommender whose decision layers adapt to a user in one
gradient step: `keras_meta.ANIL` with those layers as the head.

Needs MovieLens: the copy inside the recbole wheel
(`pip install --no-deps recbole==1.2.1`, no torch needed) or a folder of
ml-100k / ml-1m files:

    python examples/cold_start_recommendation.py [--data-dir ml-100k/]
"""

import argparse

import keras
import numpy as np

import keras_meta

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir", default=None)
parser.add_argument("--epochs", type=int, default=30)
args = parser.parse_args()
keras.utils.set_random_seed(0)

# User tasks with MeLU's protocol: users with 13-100 ratings, 10 queries,
# users split 8:1:1, the newest movies held out as new items.
tasks = keras_meta.data.movielens_cold_start(args.data_dir, seed=0)
print(tasks.description)

model = keras_meta.models.field_recommender(tasks.features, seed=0)
melu = keras_meta.ANIL(
    model, head=keras_meta.models.field_recommender_head(model),
    inner_learning_rate=0.1, num_inner_steps=1)
melu.compile(
    optimizer=keras.optimizers.Adam(1e-3), loss="mse",
    metrics=[keras.metrics.MeanAbsoluteError(),
             keras.metrics.RootMeanSquaredError(),
             keras_meta.metrics.NormalizedDCG(k=5)])
melu.fit(
    tasks.episodes("train", batch_size=32), steps_per_epoch=50,
    epochs=args.epochs,
    validation_data=tasks.episodes("validation_user_cold"),
    callbacks=[keras.callbacks.EarlyStopping(
        monitor="val_mean_absolute_error", patience=8,
        restore_best_weights=True)],
    verbose=2)

# Per-user metrics with 95% confidence intervals over users.
for state in ("user_cold", "item_cold", "user_item_cold", "warm"):
    logs = melu.evaluate(tasks.episodes(state), verbose=0, return_dict=True)
    print(f"{state:>15}: MAE {logs['mean_absolute_error']:.3f} +- "
          f"{logs['mean_absolute_error_ci95']:.3f}, nDCG@5 "
          f"{logs['ndcg_at_5']:.3f} +- {logs['ndcg_at_5_ci95']:.3f}")

# A new user: adapt to their support ratings, get an ordinary Keras model,
# and rank their held-out movies.
new_users = tasks.states["user_cold"]
rated = new_users["support_weights"][0] > 0
recommender = melu.adapt(new_users["support_inputs"][0][rated],
                         new_users["support_labels"][0][rated])
scores = recommender.predict(new_users["query_inputs"][0], verbose=0)[:, 0]
order = np.argsort(-scores)
print("predicted:", np.round(scores[order], 2))
print("actual:   ", new_users["query_labels"][0][order, 0])
