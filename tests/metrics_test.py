import keras
import numpy as np

from keras_meta import MAML
from keras_meta import metrics
from keras_meta import testing


class ConfidenceIntervalTest(testing.TestCase):
    def test_matches_numpy(self):
        values = np.random.default_rng(0).normal(size=600)
        mean, ci95 = metrics.confidence_interval(values)
        self.assertAlmostEqual(mean, values.mean())
        # Student's t with 599 degrees of freedom (1.96393...).
        self.assertAlmostEqual(
            ci95, 1.9639322489 * values.std(ddof=1) / np.sqrt(600)
        )

    def test_t_quantiles(self):
        # Published two-sided 95% quantiles (e.g. NIST/SEMATECH e-Handbook,
        # table 1.3.6.7.2), to their 3 decimals.
        for df, expected in ((1, 12.706), (2, 4.303), (9, 2.262),
                             (10, 2.228), (30, 2.042), (39, 2.023),
                             (100, 1.984)):
            self.assertAlmostEqual(metrics.t_95(df), expected, places=3)
        self.assertAlmostEqual(metrics.t_95(float("inf")), metrics.Z_95)
        with self.assertRaisesRegex(ValueError, "must be positive"):
            metrics.t_95(0)

    def test_t_quantiles_match_scipy(self):
        from scipy import stats

        for df in (1, 3, 7, 20, 46, 64, 65, 80, 599, 5000):
            self.assertAlmostEqual(metrics.t_95(df),
                                   stats.t.ppf(0.975, df), places=8)

    def test_in_graph_quantile_beyond_the_table(self):
        # `EpisodeStatistics` reads a table up to 64 degrees of freedom and
        # an expansion beyond: both agree with `t_95`.
        for count in (2, 10, 40, 65, 66, 100, 600, 10**5):
            tensor = metrics._t_95_tensor(
                keras.ops.convert_to_tensor(float(count), "float32"),
                "float32")
            self.assertAllClose(float(tensor), metrics.t_95(count - 1),
                                atol=1e-5, rtol=0)

    def test_episode_statistics_metric(self):
        values = np.random.default_rng(1).uniform(size=(50, 2))
        stats = metrics.EpisodeStatistics(["a", "b"])
        stats.update_state(values[:20])
        stats.update_state(values[20:])
        result = stats.result()
        _, expected = metrics.confidence_interval(values)
        self.assertAllClose(result["a_ci95"], expected[0], atol=1e-12)
        self.assertAllClose(result["b_ci95"], expected[1], atol=1e-12)
        self.assertAllClose(
            [result["a_episode_mean"], result["b_episode_mean"]],
            values.mean(0), atol=1e-12)
        # 10 episodes: 2.262 / 1.960 = 15% wider than the normal interval.
        stats.reset_state()
        stats.update_state(values[:10])
        self.assertAllClose(
            stats.result()["a_ci95"],
            2.2621571628 * values[:10, 0].std(ddof=1) / np.sqrt(10),
            atol=1e-9)
        stats.reset_state()
        stats.update_state(values[:3])
        _, expected = metrics.confidence_interval(values[:3])
        self.assertAllClose(stats.result()["a_ci95"], expected[0], atol=1e-12)


class EvaluateProtocolTest(testing.TestCase):
    def test_evaluate_reports_per_episode_confidence_intervals(self):
        maml = MAML(testing.tiny_classifier(), inner_learning_rate=0.3)
        maml.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        inputs, labels = testing.toy_episodes(num_tasks=12, num_queries=3)
        result = maml.evaluate(
            inputs, labels, batch_size=5, verbose=0, return_dict=True
        )
        # NumPy reference from the per-episode predictions.
        logits = maml.predict(inputs, verbose=0)
        accuracy = (logits.argmax(-1) == labels).mean(axis=1)
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        loss = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
        loss = loss.mean(axis=1)
        for name, values in (("accuracy", accuracy), ("loss", loss)):
            mean, ci95 = metrics.confidence_interval(values)
            self.assertAlmostEqual(result[name], mean, places=5)
            self.assertAlmostEqual(result[f"{name}_ci95"], ci95, places=5)
        self.assertGreater(result["accuracy_ci95"], 0.0)

    def test_training_logs_have_no_confidence_intervals(self):
        maml = MAML(testing.tiny_classifier(), inner_learning_rate=0.3)
        maml.compile(
            optimizer="sgd",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        history = maml.fit(*testing.toy_episodes(), epochs=1, verbose=0)
        self.assertEqual(sorted(history.history), ["loss"])


class CompiledLossConfidenceTest(testing.TestCase):
    def test_loss_ci_uses_the_compiled_loss(self):
        # Adapt with squared error, score with absolute error: the reported
        # per-episode loss is the compiled one.
        inputs, labels = testing.linear_regression_episodes(
            num_tasks=6, dtype="float32")
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        maml = MAML(model, inner_learning_rate=0.05, inner_loss="mse")
        maml.compile(loss="mae")
        result = maml.evaluate(inputs, labels, verbose=0, return_dict=True)
        predictions = maml.predict(inputs, verbose=0)
        per_task = np.abs(predictions - labels).mean(axis=(1, 2))
        mean, ci95 = metrics.confidence_interval(per_task)
        self.assertAlmostEqual(result["loss"], mean, places=5)
        self.assertAlmostEqual(result["loss_ci95"], ci95, places=5)
