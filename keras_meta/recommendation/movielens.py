"""Cold-start recommendation tasks from MovieLens ratings.

Each user is a task: a few of their ratings are the support set, held-out
ratings the query set, and a recommender adapts to a new user (or to new
items) from the support ratings. Every example is one (user, item) pair,
encoded as a float vector of categorical feature codes and a genre
multi-hot (see `MovieLensFeatures`); the label is the rating.

The MovieLens licence forbids redistribution, so nothing here ships the
data: `load_movielens` reads a folder of `ml-100k` or `ml-1m` files in
their original formats, a folder of RecBole atomic files, or, with no
argument, the MovieLens-100K copy inside an installed `recbole` 1.2.1
package (`pip install --no-deps recbole==1.2.1`), located without
importing it (and so without torch).
"""

import dataclasses
import importlib.util
import os

import numpy as np

from keras_meta import episode

# ml-1m's age groups, applied to ml-100k's ages in years.
AGE_GROUP_STARTS = (0, 18, 25, 35, 45, 50, 56)
# Release years: one bucket per five years from 1920 (earlier in the first,
# later in the last), plus "unknown".
YEAR_BUCKETS = tuple(range(1920, 2001, 5))
USER_FIELDS = ("age", "gender", "occupation", "zip")
ITEM_FIELDS = ("year",)
PROTOCOLS = ("melu", "mamo")
STATES = ("train", "warm", "user_cold", "item_cold", "user_item_cold")
# MAMO scores every test user on all query ratings ("mixed") and on the
# query ratings of each (user state, item state) pair.
MAMO_STATES = ("train", "mixed", "warm", "user_cold", "item_cold",
               "user_item_cold", "validation_mixed")


@dataclasses.dataclass
class Ratings:
    """MovieLens ratings with raw user and item features.

    Attributes:
        users, items, ratings, timestamps: One entry per rating (raw ids).
        user_features: `{user_id: (age_in_years_or_group_start, gender,
            occupation, zip_code)}`.
        item_features: `{item_id: (release_year or None, [genres])}`.
        name: The source's name (`ml-100k`, `ml-1m`).
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    user_features: dict
    item_features: dict
    name: str


def _read_lines(path):
    with open(path, encoding="latin-1") as f:
        return [line.rstrip("\r\n") for line in f if line.strip()]


def _require(folder, names):
    missing = [n for n in names if not os.path.exists(os.path.join(folder, n))]
    if missing:
        raise ValueError(
            f"The MovieLens folder {folder!r} lacks {missing}. Expected the "
            "original ml-100k files (u.data, u.user, u.item), the ml-1m "
            "files (ratings.dat, users.dat, movies.dat) or RecBole atomic "
            "files (NAME.inter, NAME.user, NAME.item).")


def _ratings_arrays(rows, source, columns=4):
    try:
        table = np.array(rows, dtype="float64")
    except ValueError as error:
        raise ValueError(
            f"{source}: a rating line is not {columns} numbers "
            f"(user, item, rating, timestamp): {error}") from None
    if table.ndim != 2 or table.shape[1] < 4:
        raise ValueError(
            f"{source}: expected at least 4 columns (user, item, rating, "
            f"timestamp); found shape {table.shape}.")
    return (table[:, 0].astype("int64"), table[:, 1].astype("int64"),
            table[:, 2].astype("float32"), table[:, 3].astype("int64"))


def _read_table(folder, name, separator, min_fields, layout):
    """The lines of the MovieLens file `name` split on `separator`; a line
    with fewer than `min_fields` fields raises, naming the `layout`
    expected."""
    rows = []
    for line in _read_lines(os.path.join(folder, name)):
        fields = line.split(separator)
        if len(fields) < min_fields:
            raise ValueError(f"{name}: expected {layout}, got {line!r}")
        rows.append(fields)
    return rows


def _read_ratings(folder, name, separator):
    return _ratings_arrays(
        [line.split(separator) for line in _read_lines(
            os.path.join(folder, name))], name)


def _load_100k(folder):
    _require(folder, ["u.data", "u.user", "u.item"])
    users, items, ratings, times = _read_ratings(folder, "u.data", "\t")
    user_features = {
        int(f[0]): (int(f[1]), f[2], f[3], f[4])
        for f in _read_table(folder, "u.user", "|", 5,
                             "5 '|'-separated fields "
                             "(id|age|gender|occupation|zip)")}
    genre_names = None
    if os.path.exists(os.path.join(folder, "u.genre")):
        pairs = [line.split("|") for line in _read_lines(
            os.path.join(folder, "u.genre"))]
        genre_names = [name for name, _ in sorted(
            pairs, key=lambda p: int(p[1]))]
    item_features = {}
    for fields in _read_table(folder, "u.item", "|", 6,
                              "id|title|release date|...|genre flags"):
        flags = fields[5:]
        names = genre_names or [f"genre_{i}" for i in range(len(flags))]
        date = fields[2]
        year = int(date[-4:]) if len(date) >= 4 and date[-4:].isdigit() \
            else None
        item_features[int(fields[0])] = (
            year, [n for n, f in zip(names, flags) if f.strip() == "1"])
    return Ratings(users, items, ratings, times, user_features,
                   item_features, "ml-100k")


def _load_1m(folder):
    _require(folder, ["ratings.dat", "users.dat", "movies.dat"])
    users, items, ratings, times = _read_ratings(folder, "ratings.dat", "::")
    user_features = {
        int(f[0]): (int(f[2]), f[1], f[3], f[4])
        for f in _read_table(folder, "users.dat", "::", 5,
                             "id::gender::age::occupation::zip")}
    item_features = {}
    for fields in _read_table(folder, "movies.dat", "::", 3,
                              "id::title (year)::genres"):
        title = fields[1].strip()
        year = (int(title[-5:-1]) if title.endswith(")")
                and title[-5:-1].isdigit() else None)
        item_features[int(fields[0])] = (
            year, [g for g in fields[2].split("|") if g])
    return Ratings(users, items, ratings, times, user_features,
                   item_features, "ml-1m")


def _atomic_table(path):
    lines = _read_lines(path)
    header = [h.split(":")[0] for h in lines[0].split("\t")]
    return header, [line.split("\t") for line in lines[1:]]


def _load_atomic(folder, name):
    _require(folder, [f"{name}.inter", f"{name}.user", f"{name}.item"])
    header, rows = _atomic_table(os.path.join(folder, f"{name}.inter"))
    needed = ["user_id", "item_id", "rating", "timestamp"]
    if any(n not in header for n in needed):
        raise ValueError(
            f"{name}.inter must have the columns {needed}; found {header}.")
    idx = [header.index(n) for n in needed]
    users, items, ratings, times = _ratings_arrays(
        [[r[i] for i in idx] for r in rows], f"{name}.inter")
    header, rows = _atomic_table(os.path.join(folder, f"{name}.user"))
    needed = ["user_id", "age", "gender", "occupation", "zip_code"]
    if any(n not in header for n in needed):
        raise ValueError(
            f"{name}.user must have the columns {needed}; found {header}.")
    idx = [header.index(n) for n in needed]
    user_features = {}
    for r in rows:
        r = [r[i] for i in idx]
        user_features[int(r[0])] = (int(r[1]), r[2], r[3], r[4])
    header, rows = _atomic_table(os.path.join(folder, f"{name}.item"))
    needed = ["item_id", "release_year", "class"]
    if any(n not in header for n in needed):
        raise ValueError(
            f"{name}.item must have the columns {needed}; found {header}.")
    idx = [header.index(n) for n in needed]
    item_features = {}
    for r in rows:
        r = [r[i] if i < len(r) else "" for i in idx]
        year = int(r[1]) if r[1].isdigit() else None
        item_features[int(r[0])] = (year, r[2].split())
    return Ratings(users, items, ratings, times, user_features,
                   item_features, name)


def recbole_movielens_folder():
    """The folder of the MovieLens-100K copy inside an installed `recbole`
    package, found without importing it; `None` when not installed."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        folder = os.path.join(root, "dataset_example", "ml-100k")
        if os.path.exists(os.path.join(folder, "ml-100k.inter")):
            return folder
    return None


def load_movielens(source=None):
    """Reads MovieLens ratings and features.

    Args:
        source: A folder holding the original `ml-100k` files (`u.data`,
            `u.user`, `u.item`), the `ml-1m` files (`ratings.dat`,
            `users.dat`, `movies.dat`) or RecBole atomic files
            (`ml-100k.inter`, `.user`, `.item`); or `None` for the
            MovieLens-100K copy of an installed `recbole` package.

    Returns:
        A `Ratings`.
    """
    if source is None:
        source = recbole_movielens_folder()
        if source is None:
            raise ValueError(
                "No MovieLens source given and no `recbole` package found. "
                "Pass the folder of ml-100k or ml-1m files (as downloaded "
                "from grouplens.org), or install the package that ships "
                "MovieLens-100K: `pip install --no-deps recbole==1.2.1`.")
    if not os.path.isdir(source):
        raise ValueError(
            f"MovieLens source {source!r} is not a folder. Pass the folder "
            "holding u.data/u.user/u.item (ml-100k), "
            "ratings.dat/users.dat/movies.dat (ml-1m) or RecBole atomic "
            "files.")
    if os.path.exists(os.path.join(source, "u.data")):
        return _load_100k(source)
    if os.path.exists(os.path.join(source, "ratings.dat")):
        return _load_1m(source)
    atomic = [f[:-len(".inter")] for f in sorted(os.listdir(source))
              if f.endswith(".inter")]
    if atomic:
        return _load_atomic(source, atomic[0])
    _require(source, ["u.data", "u.user", "u.item"])


@dataclasses.dataclass
class MovieLensFeatures:
    """How a (user, item) pair is encoded as a float vector.

    The vector holds, in order, one integer code per field of `fields`
    (as floats), then a multi-hot of `genres`. `cardinalities[i]` is the
    number of codes of field `i` (the last one meaning unknown).
    """

    fields: tuple
    cardinalities: tuple
    genres: tuple

    @property
    def size(self):
        return len(self.fields) + len(self.genres)

    def get_config(self):
        return {"fields": list(self.fields),
                "cardinalities": list(self.cardinalities),
                "genres": list(self.genres)}


def _encoder(ratings):
    occupations = sorted({f[2] for f in ratings.user_features.values()})
    genders = sorted({f[1] for f in ratings.user_features.values()})
    genres = sorted({g for f in ratings.item_features.values() for g in f[1]
                     if g.lower() not in ("unknown", "(no genres listed)")})
    features = MovieLensFeatures(
        fields=USER_FIELDS + ITEM_FIELDS,
        cardinalities=(len(AGE_GROUP_STARTS) + 1, len(genders) + 1,
                       len(occupations) + 1, 11, len(YEAR_BUCKETS) + 2),
        genres=tuple(genres))
    occupation_code = {o: i for i, o in enumerate(occupations)}
    gender_code = {g: i for i, g in enumerate(genders)}
    genre_code = {g: i for i, g in enumerate(genres)}

    def user_codes(user):
        if user not in ratings.user_features:
            return [len(AGE_GROUP_STARTS), len(genders), len(occupations), 10]
        age, gender, occupation, zip_code = ratings.user_features[user]
        age_group = int(np.searchsorted(AGE_GROUP_STARTS, age, "right")) - 1
        zip_code = str(zip_code)
        return [max(age_group, 0), gender_code.get(gender, len(genders)),
                occupation_code.get(occupation, len(occupations)),
                int(zip_code[0]) if zip_code[:1].isdigit() else 10]

    def item_codes(item):
        year, names = ratings.item_features.get(item, (None, []))
        if year is None:
            bucket = len(YEAR_BUCKETS) + 1
        else:
            bucket = int(np.searchsorted(YEAR_BUCKETS, year, "right"))
        hot = np.zeros(len(genres), "float32")
        for name in names:
            if name in genre_code:
                hot[genre_code[name]] = 1.0
        return [bucket], hot

    return features, user_codes, item_codes


@dataclasses.dataclass
class ColdStartTasks:
    """User tasks of one MovieLens protocol, split into states.

    Attributes:
        features: The `MovieLensFeatures` of every example.
        states: `{state: arrays}` for `train`, the evaluation states and
            the validation states (prefixed `validation_`), each a dict of
            `support_inputs` `[users, max_support, size]`, `support_labels`
            `[users, max_support, 1]`, `support_weights` (1 for a rating,
            0 for padding), `query_inputs`, `query_labels`,
            `query_weights` `[users, queries]` (1 for a query rating
            scored in this state, 0 otherwise), and, not fed to models,
            `users`, `support_items` and `query_items` (raw ids, -1 for
            padding).
        global_mean: The mean training rating.
        description: The protocol, as applied, in words.
        evaluation_states: The test states, in reporting order.
        validation_state: The state that chooses hyperparameters and
            epochs (validation users only).
    """

    features: MovieLensFeatures
    states: dict
    global_mean: float
    description: str
    evaluation_states: tuple = ("user_cold", "item_cold", "user_item_cold",
                                "warm")
    validation_state: str = "validation_user_cold"

    def episodes(self, state, *, batch_size=32, shuffle=None, repeat=None,
                 seed=0):
        """A `tf.data.Dataset` of episode batches of one state.

        `train` shuffles (seeded, a new order each pass) and repeats by
        default; evaluation states do neither, so every run scores the
        same users in the same order. When some query ratings of the state
        are not scored (`query_weights` 0), batches are `(inputs, labels,
        query_weights)`, and losses and metrics skip those ratings.
        """
        import tensorflow as tf

        if state not in self.states:
            raise ValueError(
                f"Unknown state {state!r}; this protocol has "
                f"{sorted(self.states)}.")
        arrays = self.states[state]
        if not len(arrays["users"]):
            raise ValueError(
                f"The state {state!r} has no users that satisfy the "
                f"protocol ({self.description}).")
        training = state == "train"
        shuffle = training if shuffle is None else shuffle
        repeat = training if repeat is None else repeat
        inputs = {k: arrays[k] for k in (
            episode.SUPPORT_INPUTS, episode.SUPPORT_LABELS,
            episode.SUPPORT_WEIGHTS, episode.QUERY_INPUTS)}
        weights = arrays.get("query_weights")
        if weights is not None and (weights != 1).any():
            dataset = tf.data.Dataset.from_tensor_slices(
                (inputs, arrays[episode.QUERY_LABELS], weights))
        else:
            dataset = tf.data.Dataset.from_tensor_slices(
                (inputs, arrays[episode.QUERY_LABELS]))
        if shuffle:
            dataset = dataset.shuffle(
                len(arrays["users"]), seed=seed,
                reshuffle_each_iteration=True)
        if repeat:
            dataset = dataset.repeat()
        return dataset.batch(batch_size).prefetch(2)


def _pad_tasks(tasks, max_support, size):
    count = len(tasks)
    out = {
        episode.SUPPORT_INPUTS: np.zeros((count, max_support, size), "float32"),
        episode.SUPPORT_LABELS: np.zeros((count, max_support, 1), "float32"),
        episode.SUPPORT_WEIGHTS: np.zeros((count, max_support), "float32"),
        episode.QUERY_INPUTS: None, episode.QUERY_LABELS: None,
        "users": np.array([t[0] for t in tasks], "int64"),
        "support_items": np.full((count, max_support), -1, "int64"),
    }
    queries = max((len(t[3]) for t in tasks), default=0)
    out[episode.QUERY_INPUTS] = np.zeros((count, queries, size), "float32")
    out[episode.QUERY_LABELS] = np.zeros((count, queries, 1), "float32")
    out["query_items"] = np.full((count, queries), -1, "int64")
    out["query_weights"] = np.ones((count, queries), "float32")
    for i, (_, sx, sy, qx, qy, s_items, q_items, *weights) in enumerate(
            tasks):
        n = len(sy)
        out[episode.SUPPORT_INPUTS][i, :n] = sx
        out[episode.SUPPORT_LABELS][i, :n, 0] = sy
        out[episode.SUPPORT_WEIGHTS][i, :n] = weights[0] if weights else 1.0
        out["support_items"][i, :n] = s_items
        out[episode.QUERY_INPUTS][i] = qx
        out[episode.QUERY_LABELS][i, :, 0] = qy
        out["query_items"][i] = q_items
        if weights:
            out["query_weights"][i] = weights[1]
    return out


def _row_encoder(ratings, features, user_codes, item_codes):
    """`encode(user, rating_indices)`: the float rows of those ratings."""
    item_cache = {}

    def encode(user, indices):
        codes = user_codes(user)
        rows = []
        for index in indices:
            item = int(ratings.items[index])
            if item not in item_cache:
                item_cache[item] = item_codes(item)
            item_fields, hot = item_cache[item]
            rows.append(np.concatenate(
                [np.array(codes + item_fields, "float32"), hot]))
        return np.array(rows, "float32").reshape(len(indices), features.size)

    return encode


def _split_users(users, user_fractions, rng):
    users = rng.permutation(users)
    n_train = int(round(user_fractions[0] * len(users)))
    n_val = int(round(user_fractions[1] * len(users)))
    return {"train": users[:n_train],
            "validation": users[n_train:n_train + n_val],
            "test": users[n_train + n_val:]}


def movielens_cold_start(source=None, *, protocol="melu", num_queries=None,
                         min_ratings=13, max_ratings=100,
                         cold_item_fraction=0.2, num_support=15,
                         warm_item_min_ratings=11, train_on_cold_items=False,
                         user_fractions=(0.8, 0.1, 0.1), seed=0):
    """Cold-start user tasks from MovieLens, MeLU's or MAMO's protocol.

    MeLU's protocol (`protocol="melu"`, Lee et al. 2019):

    - Users are split, seeded and disjointly, into training, validation and
      test users (`user_fractions`, 8:1:1).
    - Items are split by release year: the newest (at most
      `cold_item_fraction` of the items, whole years) are new items,
      never seen in training; the rest are existing items.
    - A user's task in a state uses their ratings of that state's items;
      users with fewer than `min_ratings` or more than `max_ratings` such
      ratings are left out (MeLU: 13 to 100). `num_queries` ratings (10)
      are the query set, the rest the support set (3 to 90, padded with
      `support_weights` 0).
    - States: `train` (training users, existing items, less each user's
      `num_queries` latest existing-item ratings), `warm` (training users:
      those latest ratings as queries, the rest as support), `user_cold`
      (test users, existing items), `item_cold` (training users, new
      items), `user_item_cold` (test users, new items), and the same with
      validation users as `validation_user_cold`, `validation_item_cold`
      (training users' new-item ratings are then split between the two by
      user), `validation_user_item_cold`. Query ratings are drawn at
      random (seeded) except in `warm`, where they are the latest.
    - With `cold_item_fraction=0` no item is new, and `user_cold` is
      RecBole-MetaRec's protocol (users with 13-100 ratings, 8:1:1, 10
      random query ratings, the rest support).

    MAMO's protocol (`protocol="mamo"`, Dong et al. 2020):

    - Users with at least `num_support + num_queries` (15 + 5) ratings
      keep their first 20 by time; the first `num_support` are the
      support set and the next `num_queries` the query set, in time order.
    - A user is warm when their first rating precedes the time by which
      80% of all ratings had been given, cold otherwise; an item is warm
      when it has at least `warm_item_min_ratings` (11) of the kept
      ratings, cold otherwise. Every rating thus has a state: `warm`
      (warm user, warm item), `user_cold`, `item_cold` or
      `user_item_cold`.
    - Users are split, seeded and disjointly, by `user_fractions` (MAMO
      splits 8:2 into training and test; the validation share chooses
      hyperparameters here). `train` holds the training users' tasks;
      `mixed` scores every test user on all query ratings, and each of
      the four states scores the test users of that user state on their
      query ratings of that item state (`query_weights`); users without
      such a rating are left out of the state. `validation_mixed` is the
      validation users' `mixed`.
    - Unlike MAMO's code, cold items' ratings are masked out of `train`
      (`support_weights` and `query_weights` 0), so that the item-cold
      states score items no training step has seen; users left without a
      warm support or query rating are dropped from `train`.
      `train_on_cold_items=True` keeps them, as MAMO's code does.

    Args:
        source: See `load_movielens`.
        protocol: `"melu"` or `"mamo"`.
        num_queries: Query ratings per user: 10 (MeLU) or 5 (MAMO) when
            `None`.
        min_ratings, max_ratings, cold_item_fraction: MeLU's protocol.
        num_support, warm_item_min_ratings, train_on_cold_items: MAMO's
            protocol.
        user_fractions: Training, validation and test shares of users.
        seed: Seeds the user split and the query draws.

    Returns:
        A `ColdStartTasks`.

    References:
        - [Lee et al., 2019](https://arxiv.org/abs/1908.00413) (MeLU)
        - [Dong et al., 2020](https://arxiv.org/abs/2007.03183) (MAMO)
    """
    num_queries = _check_protocol(
        protocol, num_queries=num_queries, min_ratings=min_ratings,
        max_ratings=max_ratings, num_support=num_support,
        user_fractions=user_fractions)
    ratings = source if isinstance(source, Ratings) else load_movielens(
        source)
    if protocol == "mamo":
        return _mamo_tasks(
            ratings, num_support=num_support,
            num_queries=5 if num_queries is None else num_queries,
            warm_item_min_ratings=warm_item_min_ratings,
            train_on_cold_items=train_on_cold_items,
            user_fractions=user_fractions, seed=seed)
    return _melu_tasks(
        ratings, num_queries=num_queries, min_ratings=min_ratings,
        max_ratings=max_ratings, cold_item_fraction=cold_item_fraction,
        user_fractions=user_fractions, seed=seed)


def _check_protocol(protocol, *, num_queries, min_ratings, max_ratings,
                    num_support, user_fractions):
    """Raises on arguments no task could be built with; returns
    `num_queries` (MeLU's 10 when `None` under MeLU's protocol)."""
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"Unknown protocol {protocol!r}; expected one of "
            f"{list(PROTOCOLS)}.")
    if len(user_fractions) != 3 or abs(sum(user_fractions) - 1) > 1e-6:
        raise ValueError(
            "`user_fractions` are the training, validation and test shares "
            f"of users and must sum to 1. Received {user_fractions!r}.")
    if protocol == "melu":
        num_queries = 10 if num_queries is None else num_queries
        if not 0 < num_queries < min_ratings <= max_ratings:
            raise ValueError(
                "Expected 0 < num_queries < min_ratings <= max_ratings, so "
                "that every task has a support set. Received num_queries="
                f"{num_queries}, min_ratings={min_ratings}, "
                f"max_ratings={max_ratings}.")
    elif num_support < 1 or (num_queries is not None and num_queries < 1):
        raise ValueError(
            "MAMO's protocol needs at least one support and one query "
            f"rating per user. Received num_support={num_support}, "
            f"num_queries={num_queries}.")
    return num_queries


def _newest_items(ratings, cold_item_fraction):
    """`(items, cold_items, cold_year)`: every item, the newest whole
    release years up to `cold_item_fraction` of them, and their first
    year (`None` without new items)."""
    items = np.unique(ratings.items)
    years = np.array([ratings.item_features.get(i, (None, []))[0] or 0
                      for i in items])
    cold_items = set()
    for year in sorted(set(years.tolist()), reverse=True):
        candidate = items[years >= year]
        if len(candidate) > cold_item_fraction * len(items):
            break
        cold_items = set(candidate.tolist())
    cold_year = (min(ratings.item_features[i][0] for i in cold_items)
                 if cold_items else None)
    return items, cold_items, cold_year


def _melu_tasks(ratings, *, num_queries, min_ratings, max_ratings,
                cold_item_fraction, user_fractions, seed):
    """The states of MeLU's protocol (see `movielens_cold_start`)."""
    features, user_codes, item_codes = _encoder(ratings)
    rng = np.random.default_rng(seed)

    items, cold_items, cold_year = _newest_items(ratings,
                                                 cold_item_fraction)

    # Users: a seeded 8:1:1 split.
    groups = _split_users(np.unique(ratings.users), user_fractions, rng)

    order = np.lexsort((ratings.items, ratings.timestamps, ratings.users))
    by_user = {}
    for index in order:
        by_user.setdefault(int(ratings.users[index]), []).append(index)
    cold_mask = np.isin(ratings.items, list(cold_items))
    encode = _row_encoder(ratings, features, user_codes, item_codes)

    def task(user, indices, latest_queries=False):
        indices = np.array(indices)
        if latest_queries:
            query, support = indices[-num_queries:], indices[:-num_queries]
        else:
            chosen = rng.permutation(len(indices))
            query = indices[np.sort(chosen[:num_queries])]
            support = indices[np.sort(chosen[num_queries:])]
        return (user, encode(user, support), ratings.ratings[support],
                encode(user, query), ratings.ratings[query],
                ratings.items[support], ratings.items[query])

    def eligible(indices):
        return min_ratings <= len(indices) <= max_ratings

    states = {name: [] for name in (
        "train", "warm", "user_cold", "item_cold", "user_item_cold",
        "validation_user_cold", "validation_item_cold",
        "validation_user_item_cold")}
    train_ratings = []
    item_cold_users = groups["train"]
    # Training users' new-item tasks: half for validation, half for test.
    split_point = len(item_cold_users) // 2
    validation_item_users = set(item_cold_users[:split_point].tolist())
    for group, members in groups.items():
        for user in members:
            indices = by_user.get(int(user), [])
            warm = [i for i in indices if not cold_mask[i]]
            cold = [i for i in indices if cold_mask[i]]
            user = int(user)
            if group == "train":
                if eligible(warm):
                    # The latest ratings are the warm state's queries and
                    # never train.
                    states["warm"].append(task(user, warm, True))
                    history = warm[:-num_queries]
                    if eligible(history):
                        states["train"].append(task(user, history))
                        train_ratings.extend(history)
                if eligible(cold):
                    name = ("validation_item_cold"
                            if user in validation_item_users
                            else "item_cold")
                    states[name].append(task(user, cold))
            else:
                prefix = "validation_" if group == "validation" else ""
                if eligible(warm):
                    states[prefix + "user_cold"].append(task(user, warm))
                if eligible(cold):
                    states[prefix + "user_item_cold"].append(task(user, cold))
    max_support = max_ratings - num_queries
    arrays = {name: _pad_tasks(tasks, max_support, features.size)
              for name, tasks in states.items()}
    description = (
        f"MeLU protocol on {ratings.name}: users with {min_ratings}-"
        f"{max_ratings} ratings in a state, {num_queries} query ratings, "
        f"users split {user_fractions} (seed {seed}), "
        + (f"new items = released in {cold_year} or later "
           f"({len(cold_items)} of {len(items)} items)" if cold_items
           else "no new items"))
    return ColdStartTasks(
        features=features, states=arrays,
        global_mean=float(np.mean(ratings.ratings[train_ratings]))
        if train_ratings else float(np.mean(ratings.ratings)),
        description=description)


def _mamo_tasks(ratings, *, num_support, num_queries, warm_item_min_ratings,
                train_on_cold_items, user_fractions, seed):
    """MAMO's protocol; see `movielens_cold_start`."""
    features, user_codes, item_codes = _encoder(ratings)
    encode = _row_encoder(ratings, features, user_codes, item_codes)
    rng = np.random.default_rng(seed)
    size = num_support + num_queries
    # The time by which 80% of all ratings had been given.
    times = np.sort(ratings.timestamps)
    split_time = times[min(int(round(0.8 * len(times))), len(times) - 1)]
    order = np.lexsort((ratings.items, ratings.timestamps, ratings.users))
    by_user = {}
    for index in order:
        by_user.setdefault(int(ratings.users[index]), []).append(index)
    kept = {u: np.array(i[:size]) for u, i in by_user.items()
            if len(i) >= size}
    if len(kept) < 3:
        raise ValueError(
            f"MAMO's protocol needs users with at least {size} ratings "
            f"(num_support + num_queries); {len(kept)} of {len(by_user)} "
            "users have that many, too few to split into training, "
            "validation and test users.")
    warm_user = {u: ratings.timestamps[i[0]] < split_time
                 for u, i in kept.items()}
    counts = {}
    for indices in kept.values():
        for item in ratings.items[indices]:
            counts[int(item)] = counts.get(int(item), 0) + 1
    warm_items = {i for i, c in counts.items() if c >= warm_item_min_ratings}
    groups = _split_users(np.array(sorted(kept)), user_fractions, rng)

    def task(user, support_weights=None, query_weights=None):
        indices = kept[user]
        support, query = indices[:num_support], indices[num_support:]
        out = (user, encode(user, support), ratings.ratings[support],
               encode(user, query), ratings.ratings[query],
               ratings.items[support], ratings.items[query])
        if support_weights is None:
            return out
        return out + (support_weights, query_weights)

    def warm_item_mask(indices):
        return np.array([int(i) in warm_items
                         for i in ratings.items[indices]], "float32")

    states = {name: [] for name in MAMO_STATES}
    train_ratings = []
    for user in groups["train"]:
        user = int(user)
        if train_on_cold_items:
            states["train"].append(task(user))
            train_ratings.extend(kept[user])
            continue
        mask = warm_item_mask(kept[user])
        if mask[:num_support].any() and mask[num_support:].any():
            states["train"].append(
                task(user, mask[:num_support], mask[num_support:]))
            train_ratings.extend(kept[user][mask > 0])
    for user in groups["validation"]:
        states["validation_mixed"].append(task(int(user)))
    for user in groups["test"]:
        user = int(user)
        states["mixed"].append(task(user))
        warm_query = warm_item_mask(kept[user][num_support:])
        ones = np.ones(num_support, "float32")
        prefix = "" if warm_user[user] else "user_"
        for name, weights in (
                ("warm" if warm_user[user] else "user_cold", warm_query),
                (prefix + "item_cold", 1.0 - warm_query)):
            if weights.any():
                states[name].append(task(user, ones, weights))
    arrays = {name: _pad_tasks(tasks, num_support, features.size)
              for name, tasks in states.items()}
    description = (
        f"MAMO protocol on {ratings.name}: users with >= {size} ratings "
        f"keep their first {size} by time ({num_support} support, then "
        f"{num_queries} query); users warm when their first rating "
        f"precedes the 80% time quantile ({sum(warm_user.values())} warm, "
        f"{len(warm_user) - sum(warm_user.values())} cold); items warm with "
        f">= {warm_item_min_ratings} kept ratings ({len(warm_items)} warm, "
        f"{len(counts) - len(warm_items)} cold); users split "
        f"{user_fractions} (seed {seed}); cold items "
        + ("kept in" if train_on_cold_items else "masked out of")
        + " training")
    return ColdStartTasks(
        features=features, states=arrays,
        global_mean=float(np.mean(ratings.ratings[train_ratings]))
        if train_ratings else float(np.mean(ratings.ratings)),
        description=description,
        evaluation_states=("mixed", "warm", "user_cold", "item_cold",
                           "user_item_cold"),
        validation_state="validation_mixed")
