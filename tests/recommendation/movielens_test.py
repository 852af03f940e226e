import json
import os

import keras
import numpy as np

import keras_meta
from keras_meta import metrics
from keras_meta import testing
from keras_meta.recommendation import movielens

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


def _trained_melu(tasks, k):
    """MeLU (`ANIL` on the field recommender's decision layers), compiled
    with MAE and nDCG@k and trained two steps on `tasks`."""
    model = keras_meta.recommendation.field_recommender(
        tasks.features, embedding_dim=4, hidden_units=(8,), seed=0)
    melu = keras_meta.ANIL(
        model, head=keras_meta.recommendation.field_recommender_head(model),
        inner_learning_rate=0.1)
    melu.compile(optimizer="adam", loss="mse", metrics=[
        keras.metrics.MeanAbsoluteError(),
        keras_meta.recommendation.NormalizedDCG(k=k)])
    melu.fit(tasks.episodes("train", batch_size=4), epochs=1,
             steps_per_epoch=2, verbose=0)
    return melu


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
            movielens.movielens_cold_start(folder, protocol="tanp")
        with self.assertRaisesRegex(ValueError, "one support and one"):
            movielens.movielens_cold_start(
                folder, protocol="mamo", num_support=0)
        valid = os.path.join(root, "valid")
        _write_100k(valid, _generate())
        with self.assertRaisesRegex(ValueError, "at least 200 ratings"):
            movielens.movielens_cold_start(
                valid, protocol="mamo", num_support=150, num_queries=50)
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
        melu = _trained_melu(self.tasks, k=5)
        self.assertEqual(keras_meta.recommendation.field_recommender_head(melu.model),
                         ["decision_0", "rating"])
        logs = melu.evaluate(self.tasks.episodes("user_cold", batch_size=8),
                             verbose=0, return_dict=True)
        self.assertIn("ndcg_at_5_ci95", logs)
        # nDCG@5 is the mean over users of NumPy's nDCG on each user's real
        # queries, ranked by the adapted predictions.
        arrays = self.tasks.states["user_cold"]
        predictions = melu.predict(
            self.tasks.episodes("user_cold", batch_size=8), verbose=0)
        expected = [
            _ndcg_reference(true[w > 0, 0], pred[w > 0, 0], 5)
            for true, pred, w in zip(arrays["query_labels"], predictions,
                                     arrays["query_weights"])]
        self.assertAllClose(logs["ndcg_at_5"], np.mean(expected), atol=1e-5)
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


class MamoProtocolTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        users, items, rows = _generate(num_users=200, num_items=200)
        # The last users join after most ratings were given: cold users.
        rows = [(u, i, r, t + (200_000_000 if u > 170 else 0))
                for u, i, r, t in rows]
        self.data = (users, items, rows)
        self.folder = os.path.join(self.get_temp_dir(), "ml")
        _write_100k(self.folder, self.data)
        self.tasks = movielens.movielens_cold_start(
            self.folder, protocol="mamo", warm_item_min_ratings=15,
            user_fractions=(0.5, 0.2, 0.3), seed=1)

    def _reference_states(self):
        """Each kept user's first 20 ratings, and user and item states,
        recomputed from the raw rows."""
        rows = sorted(self.data[2], key=lambda r: (r[0], r[3], r[1]))
        times = np.sort([r[3] for r in self.data[2]])
        split_time = times[int(round(0.8 * len(times)))]
        first = {}
        for r in rows:
            first.setdefault(r[0], []).append(r)
        kept = {u: r[:20] for u, r in first.items() if len(r) >= 20}
        counts = {}
        for r in (r for rs in kept.values() for r in rs):
            counts[r[1]] = counts.get(r[1], 0) + 1
        warm_users = {u for u, r in kept.items() if r[0][3] < split_time}
        warm_items = {i for i, c in counts.items() if c >= 15}
        return kept, warm_users, warm_items

    def test_first_twenty_ratings_in_time_order(self):
        kept, _, _ = self._reference_states()
        states = movielens.movielens_cold_start(
            self.folder, protocol="mamo", warm_item_min_ratings=15,
            user_fractions=(0.5, 0.2, 0.3), seed=1,
            train_on_cold_items=True).states
        users = np.concatenate([states[s]["users"] for s in (
            "train", "validation_mixed", "mixed")])
        self.assertEqual(sorted(users.tolist()), sorted(kept))
        # Masking cold items drops the training users left without a warm
        # support or query rating, and nobody else.
        self.assertLess(len(self.tasks.states["train"]["users"]),
                        len(states["train"]["users"]))
        for state in ("train", "mixed", "validation_mixed"):
            arrays = states[state]
            self.assertEqual(arrays["support_inputs"].shape[1], 15)
            self.assertEqual(arrays["query_inputs"].shape[1], 5)
            self.assertTrue((arrays["support_weights"] == 1).all())
            self.assertTrue((arrays["query_weights"] == 1).all())
            for u, s_items, q_items, labels in zip(
                    arrays["users"], arrays["support_items"],
                    arrays["query_items"], arrays["query_labels"][..., 0]):
                rows = kept[int(u)]
                self.assertEqual(s_items.tolist(), [r[1] for r in rows[:15]])
                self.assertEqual(q_items.tolist(), [r[1] for r in rows[15:]])
                self.assertEqual(labels.tolist(), [r[2] for r in rows[15:]])

    def test_states_follow_user_and_item_states(self):
        kept, warm_users, warm_items = self._reference_states()
        self.assertTrue(0 < len(warm_users) < len(kept))
        states = self.tasks.states
        mixed = set(states["mixed"]["users"].tolist())
        for state in ("warm", "user_cold", "item_cold", "user_item_cold"):
            arrays = states[state]
            self.assertTrue(len(arrays["users"]), state)
            for u, q_items, weights in zip(arrays["users"],
                                           arrays["query_items"],
                                           arrays["query_weights"]):
                self.assertIn(int(u), mixed)
                self.assertEqual(int(u) in warm_users,
                                 state in ("warm", "item_cold"), state)
                item_warm = state in ("warm", "user_cold")
                self.assertTrue(weights.any())
                for item, w in zip(q_items, weights):
                    self.assertEqual(bool(w), (int(item) in warm_items)
                                     == item_warm, state)
        # Every test query rating is scored in exactly one state.
        scored = {}
        for state in ("warm", "user_cold", "item_cold", "user_item_cold"):
            arrays = states[state]
            for u, w in zip(arrays["users"], arrays["query_weights"]):
                scored[int(u)] = scored.get(int(u), 0) + w
        for total in scored.values():
            self.assertAllClose(total, np.ones(5))

    def test_users_disjoint_and_cold_items_never_train(self):
        _, _, warm_items = self._reference_states()
        states = self.tasks.states
        groups = [set(states[s]["users"].tolist()) for s in (
            "train", "validation_mixed", "mixed")]
        self.assertFalse(groups[0] & groups[1] or groups[0] & groups[2]
                         or groups[1] & groups[2])
        train = states["train"]
        trained = set(train["support_items"][
            train["support_weights"] > 0].tolist()) | set(
                train["query_items"][train["query_weights"] > 0].tolist())
        self.assertTrue(trained)
        self.assertFalse(trained - warm_items)
        cold_seen = set(train["support_items"][
            train["support_weights"] == 0].tolist())
        self.assertTrue(cold_seen)  # masked, not absent: the data has them

    def test_weighted_states_train_and_evaluate(self):
        dataset = self.tasks.episodes("user_cold", batch_size=4)
        self.assertLen(dataset.element_spec, 3)  # with query weights
        melu = _trained_melu(self.tasks, k=3)
        logs = melu.evaluate(dataset, verbose=0, return_dict=True)
        # The MAE over the state's query ratings only, and its interval
        # over each user's MAE on them.
        arrays = self.tasks.states["user_cold"]
        predictions = melu.predict(
            self.tasks.episodes("user_cold", batch_size=4), verbose=0)
        errors = np.abs(predictions - arrays["query_labels"])[..., 0]
        w = arrays["query_weights"]
        self.assertTrue((w == 0).any())
        self.assertAllClose(logs["mean_absolute_error"],
                            (errors * w).sum() / w.sum(), atol=1e-4)
        per_user = (errors * w).sum(1) / w.sum(1)
        self.assertAllClose(logs["mean_absolute_error_episode_mean"],
                            per_user.mean(), atol=1e-4)
        self.assertAllClose(
            logs["mean_absolute_error_ci95"],
            metrics.t_95(len(per_user) - 1) * per_user.std(ddof=1)
            / np.sqrt(len(per_user)),
            atol=1e-4)


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
            metric = keras_meta.recommendation.NormalizedDCG(
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
        metric = keras_meta.recommendation.NormalizedDCG(k=3)
        metric.update_state(true, true)
        self.assertAllClose(metric.result(), 1.0)
        metric.reset_state()
        metric.update_state(true, -true)
        self.assertLess(float(metric.result()), 0.7)
        with self.assertRaisesRegex(ValueError, "k < 6"):
            keras_meta.recommendation.NormalizedDCG(k=6).update_state(true, true)


def _true_top_k_reference(true, k, draws=20000, seed=0):
    """The true top k's relevance, ties at the k-th place broken at random:
    the mean over many random tie-breaks."""
    if len(true) <= k:
        return np.ones_like(true)
    rng = np.random.default_rng(seed)
    relevant = np.zeros_like(true, dtype="float64")
    for _ in range(draws):
        order = np.lexsort((rng.random(len(true)), -true))[:k]
        relevant[order] += 1.0
    return relevant / draws


class RankingProtocolTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(3)
        self.true = rng.integers(1, 6, (8, 10)).astype("float32")  # ties
        self.pred = rng.integers(1, 4, (8, 10)).astype("float32")  # ties
        self.weight = np.ones((8, 10), "float32")
        self.weight[0, 6:] = 0.0
        self.weight[1, 3:] = 0.0  # fewer valid items than k

    def _references(self, k):
        precision, ndcg = [], []
        discounts = 1 / np.log2(np.arange(k) + 2)
        for t, p, w in zip(self.true, self.pred, self.weight):
            t, p = t[w > 0], p[w > 0]
            relevant = _true_top_k_reference(t, k)
            ranked = np.argsort(-p, kind="stable")[:k]
            precision.append(relevant[ranked].sum() / k)
            ideal = discounts[:min(k, len(t))].sum()
            ndcg.append((relevant[ranked] * discounts[:len(ranked)]).sum()
                        / ideal)
        return np.mean(precision), np.mean(ndcg)

    def test_precision_and_binary_ndcg_match_numpy(self):
        for k in (3, 5):
            precision, ndcg = self._references(k)
            metric = keras_meta.recommendation.PrecisionAtK(k=k)
            metric.update_state(self.true[..., None], self.pred[..., None],
                                sample_weight=self.weight)
            self.assertAllClose(metric.result(), precision, atol=2e-3)
            metric = keras_meta.recommendation.NormalizedDCG(k=k, gain="top_k")
            metric.update_state(self.true[..., None], self.pred[..., None],
                                sample_weight=self.weight)
            self.assertAllClose(metric.result(), ndcg, atol=2e-3)

    def test_perfect_reversed_and_random_rankings(self):
        true = np.array([[5.0, 1.0, 3.0, 2.0, 4.0, 0.5, 6.0, 7.0, 8.0, 9.0]])
        metric = keras_meta.recommendation.PrecisionAtK(k=5)
        metric.update_state(true, true)
        self.assertAllClose(metric.result(), 1.0)
        metric.reset_state()
        metric.update_state(true, -true)
        self.assertAllClose(metric.result(), 0.0)
        # A random ranking of 10 items finds half of the true top 5.
        rng = np.random.default_rng(0)
        metric.reset_state()
        metric.update_state(np.repeat(true, 4000, 0),
                            rng.random((4000, 10)).astype("float32"))
        self.assertAllClose(metric.result(), 0.5, atol=0.01)
        # Ties in the true ratings: a constant prediction (ties broken by
        # position) scores chance, not above it.
        ties = rng.integers(1, 6, (4000, 10)).astype("float32")
        metric.reset_state()
        metric.update_state(ties, np.zeros_like(ties))
        self.assertAllClose(metric.result(), 0.5, atol=0.01)
        with self.assertRaisesRegex(ValueError, "k < 10"):
            keras_meta.recommendation.PrecisionAtK(k=10).update_state(true, true)
        with self.assertRaisesRegex(ValueError, "top_k"):
            keras_meta.recommendation.NormalizedDCG(k=5, gain="binary")
        config = keras_meta.recommendation.PrecisionAtK(k=3).get_config()
        self.assertEqual(
            keras_meta.recommendation.PrecisionAtK.from_config(config).k, 3)


class BenchmarkScoringTest(testing.TestCase):
    """The cold-start benchmark's per-user scores and paired differences,
    against numbers worked out by hand."""

    def test_per_user_errors_skip_padded_queries(self):
        from keras_meta.experiments import movielens as experiment

        arrays = {
            "query_labels": np.array([[4, 2, 5, 1], [3, 3, 1, 0]],
                                     "float32")[..., None],
            "query_weights": np.array([[1, 1, 1, 1], [1, 1, 1, 0]],
                                      "float32")}
        predictions = np.array([[3.5, 2, 4, 2], [3, 2, 2, 9]], "float32")
        scores = experiment._per_user_scores(predictions, arrays, k=2)
        # User 0: errors -0.5, 0, -1, 1. User 1: 0, -1, 1 (the padded 9
        # against 0 is not counted).
        self.assertAllClose(scores["mean_absolute_error"], [0.625, 2 / 3])
        self.assertAllClose(scores["root_mean_squared_error"],
                            [0.75, np.sqrt(2 / 3)])
        # Rankings only where every query counts.
        self.assertNotIn("ndcg", scores)

    def test_rankings_of_one_user(self):
        from keras_meta.experiments import movielens as experiment

        arrays = {"query_labels": np.array([[4, 2, 5, 1]],
                                           "float32")[..., None],
                  "query_weights": np.ones((1, 4), "float32")}
        scores = experiment._per_user_scores(
            np.array([[2, 3, 4, 1]], "float32"), arrays, k=2)
        # Predicted top two: the 5 and the 2; the ideal: the 5 and the 4.
        self.assertAllClose(scores["ndcg"], [
            (5 + 2 / np.log2(3)) / (5 + 4 / np.log2(3))], atol=1e-6)
        # RecBole's: the true top two are relevant; one of them is found,
        # at rank 1.
        self.assertAllClose(scores["precision_top_k"], [0.5], atol=1e-6)
        self.assertAllClose(scores["ndcg_top_k"], [1 / (1 + 1 / np.log2(3))],
                            atol=1e-6)

    def test_paired_differences(self):
        from keras_meta.experiments import movielens as experiment

        mean, ci = experiment.paired_differences([1.0, 2.0, 3.0],
                                                 [0.5, 2.5, 2.0])
        # Differences 0.5, -0.5, 1: mean 1/3, sample variance 7/12, and
        # Student's t with 2 degrees of freedom is 4.3027.
        self.assertAllClose(mean, 1 / 3)
        self.assertAllClose(ci, 4.302653 * np.sqrt(7 / 12) / np.sqrt(3),
                            atol=1e-5)
        # The users' own spread cancels: a constant gap has no width.
        mean, ci = experiment.paired_differences([1.0, 5.0, 9.0],
                                                 [0.8, 4.8, 8.8])
        self.assertAllClose([mean, ci], [0.2, 0.0], atol=1e-6)

    def test_spread_over_seeds(self):
        from keras_meta.experiments import movielens as experiment

        def result(mae, diff):
            return {"scores": {"new": {"mean_absolute_error": [mae, 0.1]}},
                    "mae_minus_pretrained": {"new": diff}}

        runs = {0: {"maml": result(0.8, [-0.02, 0.01])},
                1: {"maml": result(0.9, [0.03, 0.01])},
                2: {"maml": result(1.0, [-0.01, 0.02])}}
        across = experiment.across_seeds(runs)["maml"]
        self.assertEqual(across["seeds"], 3)
        mae = across["scores"]["new"]["mean_absolute_error"]
        self.assertEqual(mae["per_seed"], [0.8, 0.9, 1.0])
        self.assertAllClose([mae["mean"], mae["std"]], [0.9, 0.1])
        diff = across["mae_minus_pretrained"]["new"]
        self.assertAllClose(diff["mean"], 0.0)
        # Seed 0's interval is below zero, seed 1's above, seed 2's holds
        # zero.
        self.assertEqual((diff["seeds_better"], diff["seeds_worse"]), (1, 1))

    def test_fixed_configurations_are_not_searched(self):
        import tempfile

        from keras_meta.experiments import movielens as experiment

        with tempfile.TemporaryDirectory() as tmp:
            _write_100k(tmp, _generate(num_users=40, num_items=60))
            grid = dict(source=tmp, protocol="recbole", meta_epochs=1,
                        steps_per_epoch=1, meta_batch_size=2,
                        embedding_dim=4, learning_rates=(1e-3, 1e-4),
                        inner_learning_rates=(0.01, 0.1), inner_steps=(1,),
                        fine_tune_rates=(0.01, 0.1))
            fixed = {"pretrained": {"learning_rate": 1e-3,
                                    "inner_learning_rate": 0.1,
                                    "num_inner_steps": 1},
                     "maml": {"learning_rate": 1e-4,
                              "inner_learning_rate": 0.01,
                              "num_inner_steps": 1}}
            summary = experiment.run_seeds(
                seeds=[3, 4], configurations=fixed,
                output=os.path.join(tmp, "seeds.json"),
                learners=["global_mean", "pretrained", "maml"], **grid)
            for seed in ("3", "4"):
                results = summary["runs"][seed]
                self.assertEqual(experiment.chosen_configurations(results),
                                 fixed)
                self.assertEqual(results["maml"]["configurations"], 1)
                self.assertEqual(results["pretrained"]["configurations"], 1)
            self.assertEqual(summary["across_seeds"]["maml"]["seeds"], 2)
            with open(os.path.join(tmp, "seeds.json")) as f:
                self.assertEqual(json.load(f)["seeds"], [3, 4])
            with self.assertRaisesRegex(ValueError, "'maml'.*tuned"):
                experiment.run(configurations={"pretrained":
                                               fixed["pretrained"]},
                               learners=["pretrained", "maml"], output=None,
                               **grid)
