"""Pins the public API: a change here is a change users see."""

import keras_meta
from keras_meta import testing


class APITest(testing.TestCase):
    def test_top_level(self):
        self.assertEqual(
            sorted(keras_meta.__all__),
            sorted([
                "ANIL", "ANP", "BOIL", "CAVIA", "CNP", "IMAML", "LEO", "MAML",
                "MANN",
                "MatchingNet", "MetaModel", "MetaSGD", "ProtoMAML", "ProtoNet",
                "R2D2", "RelationNet", "Reptile", "SNAIL", "__version__",
                "backend",
                "callbacks", "cluster", "export",
                "data",
                "episode", "inner", "losses", "metrics", "models",
                "recommendation", "rl",
            ]),
        )
        for name in keras_meta.__all__:
            self.assertTrue(hasattr(keras_meta, name), name)

    def test_submodules(self):
        expected = {
            keras_meta.algorithms: [
                "ANIL", "ANP", "BOIL", "CAVIA", "CNP", "IMAML", "LEO", "MAML",
                "MANN", "MatchingNet", "MetaModel", "MetaSGD", "ProtoMAML",
                "ProtoNet", "R2D2", "RelationNet", "Reptile", "SNAIL",
            ],
            keras_meta.data: [
                "ClassIndex", "affine_distortions", "benchmarks",
                "class_fingerprints",
                "episodes", "episodes_from_index", "load_class_index",
                "load_images", "load_splits", "load_support",
                "plot_episode", "random_context",
                "remove_shared_classes", "sinusoid",
                "sinusoid_parameters", "split_classes", "splits",
            ],
            keras_meta.models: ["AffineViews", "BatchStatisticsModel",
                                "MANNCell", "ViewMean",
                                "attentive_neural_process_networks", "conv4",
                                "mann_sequence_model", "mlp",
                                "neural_process_networks", "resnet12",
                                "snail_sequence_model"],
            keras_meta.rl: [
                "AdaptationReturns", "GaussianPolicyHead",
                "AntDirection", "AntVelocity",
                "HalfCheetahDirection", "HalfCheetahVelocity", "MAMLRL",
                "MetaPolicyGradient", "Navigation2D", "ProMP",
                "PureFunctionEnvironment", "SimulatorEnvironment",
                "TaskFamily", "advantages", "gaussian_kl",
                "gaussian_log_prob", "gaussian_mlp_policy", "split_gaussian",
                "summarize_returns", "navigation_paths", "plot_navigation_paths",
            ],
            keras_meta.recommendation: [
                "ColdStartTasks", "MovieLensFeatures", "NormalizedDCG",
                "PrecisionAtK", "field_recommender", "field_recommender_head",
                "load_movielens", "movielens_cold_start"],
            keras_meta.cluster: [
                "free_ports", "launch_local_workers", "worker_environments"],
            keras_meta.inner: [
                "adam", "conjugate_gradient", "gradient_descent",
                "gradient_step"],
            keras_meta.backend: [
                "CHECKS_LABELS_IN_GRAPH", "check_even_split",
                "check_label_range", "compiled", "exact_moments",
                "fused_batch_statistics_call", "implicit_solution",
                "loss_and_gradients", "map_tasks", "num_replicas",
                "per_replica_logs", "read_value", "remat", "replica_index",
                "scan_steps", "step_function", "sum_task_gradients",
                "task_mapping", "value_and_grad",
            ],
            keras_meta.testing: [
                "TestCase", "classifier_meta_gradient_error", "every_learner",
                "finite_difference_gradient",
                "linear_regression_episodes", "linear_regressor", "make_image_folder", "meta_gradient",
                "meta_gradient_error",
                "meta_loss_function",
                "tiny_classifier", "toy_episodes",
            ],
        }
        for module, names in expected.items():
            self.assertEqual(sorted(module.__all__), sorted(names), module)
            for name in names:
                self.assertTrue(hasattr(module, name), name)

    def test_episode_keys(self):
        self.assertEqual(
            keras_meta.episode.EPISODE_KEYS,
            ("query_inputs", "support_inputs", "support_labels"),
        )

    def test_moved_names_warn_and_still_work(self):
        import warnings

        moved = [
            (keras_meta.data, "movielens_cold_start"),
            (keras_meta.data, "ColdStartTasks"),
            (keras_meta.data, "MovieLensFeatures"),
            (keras_meta.data, "load_movielens"),
            (keras_meta.models, "field_recommender"),
            (keras_meta.models, "field_recommender_head"),
            (keras_meta.metrics, "NormalizedDCG"),
            (keras_meta.metrics, "PrecisionAtK"),
        ]
        for module, name in moved:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = getattr(module, name)
            self.assertIs(value, getattr(keras_meta.recommendation, name))
            self.assertTrue(any(
                issubclass(w.category, DeprecationWarning)
                and "keras_meta.recommendation" in str(w.message)
                for w in caught), name)
        with self.assertRaisesRegex(AttributeError, "no attribute"):
            keras_meta.data.not_a_name
