"""`benchmarks/meta_rl_half_cheetah.py --summarize`: the spread over seeds."""

import importlib.util
import os

from keras_meta import testing

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks",
                      "meta_rl_half_cheetah.py")


def _script():
    spec = importlib.util.spec_from_file_location("half_cheetah", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(seed, maml, paired, iteration=275, learner="maml"):
    return {
        "command": f"python benchmarks/meta_rl_half_cheetah.py --seed {seed}",
        "config": {"task": "velocity", "variant": "rllab",
                   "learner": learner, "outer": "trpo", "seed": seed},
        "iterations_completed": 300 + seed,
        "checkpoint": {"iteration": iteration},
        "results": {"maml": {"mean": maml}},
        "paired_with_paper": {"maml minus paper maml": {"mean": paired}},
    }


class SummarizeSeedsTest(testing.TestCase):
    def test_mean_and_spread_over_seeds(self):
        summary = _script().summarize_seeds([
            _record(0, [-150.0, -100.0, -90.0, -88.0], [-20.0, -22.0, -24.0,
                                                        -27.0]),
            _record(1, [-140.0, -104.0, -96.0, -92.0], [-10.0, -26.0, -30.0,
                                                        -31.0], 200),
            _record(2, [-145.0, -102.0, -93.0, -84.0], [-15.0, -24.0, -27.0,
                                                        -23.0], 300),
        ])
        self.assertEqual(summary["seeds"], [0, 1, 2])
        self.assertEqual(summary["chosen_iterations"], [275, 200, 300])
        self.assertEqual(summary["iterations_completed"], [300, 301, 302])
        maml = summary["rows"]["maml"]
        # Worked by hand: means -145, -102, -93, -88; each column's
        # deviations (-5, 5, 0), (2, -2, 0), (3, -3, 0), (0, -4, 4) give
        # sample standard deviations 5, 2, 3 and 4.
        self.assertEqual(maml["mean"], [-145.0, -102.0, -93.0, -88.0])
        self.assertEqual(maml["sd"], [5.0, 2.0, 3.0, 4.0])
        self.assertEqual(maml["per_seed"][1], [-140.0, -104.0, -96.0, -92.0])
        paired = summary["rows"]["maml minus paper maml"]
        self.assertEqual(paired["mean"], [-15.0, -24.0, -27.0, -27.0])
        self.assertEqual(paired["sd"], [5.0, 2.0, 3.0, 4.0])

    def test_refuses_mixed_configurations_and_repeated_seeds(self):
        script = _script()
        one = _record(0, [0.0] * 4, [0.0] * 4)
        with self.assertRaisesRegex(ValueError, "at least two seeds"):
            script.summarize_seeds([one])
        with self.assertRaisesRegex(ValueError, "one configuration"):
            script.summarize_seeds(
                [one, _record(1, [0.0] * 4, [0.0] * 4, learner="promp")])
        with self.assertRaisesRegex(ValueError, "repeated seeds"):
            script.summarize_seeds([one, _record(0, [1.0] * 4, [0.0] * 4)])
