import os

import keras
import numpy as np

import keras_meta
from keras_meta import testing
from keras_meta.data import movielens

GENRES = ["unknown", "Action", "Comedy", "Drama"]


def _generate(seed=0, num_users=60, num_items=80):
    """Ratings with features, as plain Python data."""
    rng = np.random.default_rng(seed)
    users = {}
    for u in range(1, num_users + 1):
        users[u] = (int(rng.integers(10, 70)), str(rng.choice(["M", "F"])),
                    str(rng.choice(["writer", "other", "student"])),
                    f"{rng.integers(0, 99999):05d}")
    items = {}
    for i in range(1, num_items + 1):
        year = 1990 + i % 9  # 1990..1998
        items[i] = (year, [g for g in GENRES[1:] if rng.random() < 0.4])
    rows = []
    for u in users:
        count = int(rng.integers(5, 60))
        for i in rng.choice(num_items, count, replace=False) + 1:
            rows.append((u, int(i), int(rng.integers(1, 6)),
                         int(rng.integers(8e8, 9e8))))
    return users, items, rows


def _write_100k(folder, data):
    users, items, rows = data
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "u.data"), "w") as f:
        for r in rows:
            f.write("\t".join(map(str, r)) + "\n")
    with open(os.path.join(folder, "u.user"), "w") as f:
        for u, (age, g, o, z) in users.items():
            f.write(f"{u}|{age}|{g}|{o}|{z}\n")
    with open(os.path.join(folder, "u.genre"), "w") as f:
        for i, g in enumerate(GENRES):
            f.write(f"{g}|{i}\n")
    with open(os.path.join(folder, "u.item"), "w", encoding="latin-1") as f:
        for i, (year, genres) in items.items():
            flags = "|".join("1" if g in genres else "0" for g in GENRES)
            f.write(f"{i}|Movie {i} ({year})|01-Jan-{year}||http://x|"
                    f"{flags}\n")


def _write_1m(folder, data):
    users, items, rows = data
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "ratings.dat"), "w") as f:
        for r in rows:
            f.write("::".join(map(str, r)) + "\n")
    with open(os.path.join(folder, "users.dat"), "w") as f:
        for u, (age, g, o, z) in users.items():
            f.write(f"{u}::{g}::{age}::{o}::{z}\n")
    with open(os.path.join(folder, "movies.dat"), "w",
              encoding="latin-1") as f:
        for i, (year, genres) in items.items():
            f.write(f"{i}::Movie {i} ({year})::{'|'.join(genres)}\n")


def _write_atomic(folder, data, drop=None):
    users, items, rows = data
    os.makedirs(folder, exist_ok=True)
    inter = ["user_id:token", "item_id:token", "rating:float",
             "timestamp:float"]
    keep = [c for c in inter if c.split(":")[0] != drop]
    with open(os.path.join(folder, "ml.inter"), "w") as f:
        f.write("\t".join(keep) + "\n")
        for r in rows:
            f.write("\t".join(str(v) for c, v in zip(inter, r)
                              if c in keep) + "\n")
    with open(os.path.join(folder, "ml.user"), "w") as f:
        f.write("user_id:token\tage:token\tgender:token\toccupation:token"
                "\tzip_code:token\n")
        for u, (age, g, o, z) in users.items():
            f.write(f"{u}\t{age}\t{g}\t{o}\t{z}\n")
    with open(os.path.join(folder, "ml.item"), "w") as f:
        f.write("item_id:token\tmovie_title:token_seq\trelease_year:token\t"
                "class:token_seq\n")
        for i, (year, genres) in items.items():
            f.write(f"{i}\tMovie {i}\t{year}\t{' '.join(genres)}\n")


class LoaderTest(testing.TestCase):
    def test_three_formats_read_the_same_ratings(self):
        data = _generate()
        root = self.get_temp_dir()
        loaded = []
        for name, write in (("100k", _write_100k), ("1m", _write_1m),
                            ("atomic", _write_atomic)):
            folder = os.path.join(root, name)
            write(folder, data)
            loaded.append(movielens.load_movielens(folder))
        users, items, rows = data
        for ratings in loaded:
            self.assertEqual(len(ratings.ratings), len(rows))
            self.assertEqual(sorted(ratings.user_features), sorted(users))
            self.assertAllClose(ratings.ratings,
                                np.array([r[2] for r in rows], "float32"))
            self.assertEqual(ratings.item_features[3][0], 1993)
            self.assertEqual(sorted(ratings.item_features[3][1]),
                             sorted(items[3][1]))

    def test_bad_sources(self):
        root = self.get_temp_dir()
        with self.assertRaisesRegex(ValueError, "not a folder"):
            movielens.load_movielens(os.path.join(root, "missing"))
        empty = os.path.join(root, "empty")
        os.makedirs(empty)
        with self.assertRaisesRegex(ValueError, "lacks"):
            movielens.load_movielens(empty)
        folder = os.path.join(root, "no_rating")
        _write_atomic(folder, _generate(), drop="rating")
        with self.assertRaisesRegex(ValueError, "rating"):
            movielens.load_movielens(folder)
        with self.assertRaisesRegex(ValueError, "protocol"):
            movielens.movielens_cold_start(folder, protocol="mamo")
        with self.assertRaisesRegex(ValueError, "num_queries"):
            movielens.movielens_cold_start(
                folder, num_queries=13, min_ratings=13)


class ProtocolTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        self.folder = os.path.join(self.get_temp_dir(), "ml")
        _write_100k(self.folder, _generate(num_users=120))
        self.tasks = movielens.movielens_cold_start(
            self.folder, min_ratings=13, max_ratings=40,
            cold_item_fraction=0.5, seed=1)

    def test_shapes_counts_and_no_query_in_support(self):
        counts = {k: len(v["users"]) for k, v in self.tasks.states.items()}
        self.assertTrue(all(counts.values()), counts)
        for state, arrays in self.tasks.states.items():
            if not len(arrays["users"]):
                continue
            supports = arrays["support_weights"].sum(1)
            self.assertTrue((supports >= 3).all() and (supports <= 30).all(),
                            state)
            self.assertEqual(arrays["query_inputs"].shape[1:],
                             (10, self.tasks.features.size))
            for s_items, q_items, w in zip(arrays["support_items"],
                                           arrays["query_items"],
                                           arrays["support_weights"]):
                self.assertEqual(len(set(s_items[w > 0]) & set(q_items)), 0)
                self.assertTrue((s_items[w == 0] == -1).all())

    def test_users_are_disjoint_and_new_items_never_train(self):
        states = self.tasks.states
        train_users = set(states["train"]["users"])
        for state in ("user_cold", "user_item_cold", "validation_user_cold",
                      "validation_user_item_cold"):
            self.assertFalse(train_users & set(states[state]["users"]), state)
        self.assertFalse(set(states["user_cold"]["users"])
                         & set(states["validation_user_cold"]["users"]))
        self.assertFalse(set(states["item_cold"]["users"])
                         & set(states["validation_item_cold"]["users"]))
        train_items = set(states["train"]["support_items"].ravel()) | set(
            states["train"]["query_items"].ravel())
        for state in ("item_cold", "user_item_cold"):
            items = set(states[state]["query_items"].ravel()) | set(
                states[state]["support_items"].ravel())
            items.discard(-1)
            self.assertTrue(items, state)
            self.assertFalse(items & train_items, state)
        # An existing user's latest ratings (the warm queries) never train.
        train_pairs = {(u, i) for u, row in zip(
            states["train"]["users"], np.concatenate(
                [states["train"]["support_items"],
                 states["train"]["query_items"]], 1)) for i in row}
        for u, row in zip(states["warm"]["users"],
                          states["warm"]["query_items"]):
            self.assertFalse({(u, i) for i in row} & train_pairs)

    def test_split_is_seeded(self):
        again = movielens.movielens_cold_start(
            self.folder, min_ratings=13, max_ratings=40,
            cold_item_fraction=0.5, seed=1)
        other = movielens.movielens_cold_start(
            self.folder, min_ratings=13, max_ratings=40,
            cold_item_fraction=0.5, seed=2)
        self.assertAllClose(again.states["user_cold"]["query_inputs"],
                            self.tasks.states["user_cold"]["query_inputs"])
        self.assertNotEqual(
            sorted(other.states["user_cold"]["users"].tolist()),
            sorted(self.tasks.states["user_cold"]["users"].tolist()))

    def test_melu_is_anil_on_the_field_recommender(self):
        model = keras_meta.models.field_recommender(
            self.tasks.features, embedding_dim=4, hidden_units=(8,), seed=0)
        self.assertEqual(keras_meta.models.field_recommender_head(model),
                         ["decision_0", "rating"])
        melu = keras_meta.ANIL(
            model, head=keras_meta.models.field_recommender_head(model),
            inner_learning_rate=0.1)
        melu.compile(optimizer="adam", loss="mse", metrics=[
            keras.metrics.MeanAbsoluteError(),
            keras_meta.metrics.NormalizedDCG(k=5)])
        melu.fit(self.tasks.episodes("train", batch_size=4), epochs=1,
                 steps_per_epoch=2, verbose=0)
        logs = melu.evaluate(self.tasks.episodes("user_cold", batch_size=8),
                             verbose=0, return_dict=True)
        self.assertIn("ndcg_at_5_ci95", logs)
        self.assertTrue(0 < logs["ndcg_at_5"] <= 1)
        # The adapted recommender is an ordinary Keras model, saved and
        # loaded in safe mode.
        arrays = self.tasks.states["user_cold"]
        w = arrays["support_weights"][0] > 0
        adapted = melu.adapt(arrays["support_inputs"][0][w],
                             arrays["support_labels"][0][w])
        path = os.path.join(self.get_temp_dir(), "user.keras")
        adapted.save(path)
        loaded = keras.models.load_model(path)
        self.assertAllClose(loaded.predict(arrays["query_inputs"][0],
                                           verbose=0),
                            adapted.predict(arrays["query_inputs"][0],
                                            verbose=0), atol=1e-6)


def _ndcg_reference(true, pred, k, exponential=False):
    order = np.argsort(-pred, kind="stable")[:k]
    gains = 2.0 ** true - 1 if exponential else true
    discounts = 1 / np.log2(np.arange(k) + 2)
    ideal = (np.sort(gains)[::-1][:k] * discounts).sum()
    return (gains[order] * discounts).sum() / ideal if ideal > 0 else 0.0


class NormalizedDCGTest(testing.TestCase):
    def test_matches_numpy_with_ties_and_padding(self):
        rng = np.random.default_rng(0)
        true = rng.integers(1, 6, (6, 10)).astype("float32")
        pred = rng.integers(1, 4, (6, 10)).astype("float32")  # many ties
        weight = np.ones((6, 10), "float32")
        weight[0, 7:] = 0.0
        for exponential in (False, True):
            metric = keras_meta.metrics.NormalizedDCG(
                k=3, gain="exponential" if exponential else "linear")
            metric.update_state(true[..., None], pred[..., None],
                                sample_weight=weight)
            expected = [_ndcg_reference(true[0, :7], pred[0, :7], 3,
                                        exponential)]
            expected += [_ndcg_reference(t, p, 3, exponential)
                         for t, p in zip(true[1:], pred[1:])]
            self.assertAllClose(metric.result(), np.mean(expected),
                                atol=1e-6)

    def test_a_perfect_ranking_scores_one_and_k_must_be_below_the_size(self):
        true = np.array([[5.0, 1.0, 3.0, 2.0, 4.0, 1.0]])
        metric = keras_meta.metrics.NormalizedDCG(k=3)
        metric.update_state(true, true)
        self.assertAllClose(metric.result(), 1.0)
        metric.reset_state()
        metric.update_state(true, -true)
        self.assertLess(float(metric.result()), 0.7)
        with self.assertRaisesRegex(ValueError, "k < 6"):
            keras_meta.metrics.NormalizedDCG(k=6).update_state(true, true)
