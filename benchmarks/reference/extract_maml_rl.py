"""Writes the MAML paper's per-goal navigation and HalfCheetah-velocity
returns as JSON.

Reads the result files of Finn et al.'s code (cbfinn/maml_rl, `icml/
icml_point_results_{maml,sens0,random,oracle}.pkl` and `icml/
icml_cheetah_results_{maml,pretrain,random,oracle}.pkl`, Python 2 pickles;
MIT licence, copyright rllab contributors) from a checkout of that
repository and writes `maml_rl_point_results.json` and
`maml_rl_cheetah_results.json` beside this script: for each policy, the
mean return of each of the 40 test goals
(`keras_meta.rl.Navigation2D.paper_test_goals()`,
`keras_meta.rl.HalfCheetahVelocity.paper_test_goals()`, in that order)
after 0, 1, ... adaptation steps.

    python benchmarks/reference/extract_maml_rl.py PATH/TO/maml_rl
"""

import json
import os
import pickle
import sys

# Per experiment: the file names of the paper's runs and what they are,
# and the protocol of its test script.
EXPERIMENTS = {
    "point": (
        {"maml": "maml", "pretrained": "sens0", "random": "random",
         "oracle": "oracle"},
        "40 test goals (NumPy legacy seed 1, uniform in [-0.5, 0.5]^2); 40 "
        "trajectories of 100 steps per goal and step (batch_size 4000); "
        "inner step 0.5, then 0.25 for later steps "
        "(maml_examples/test_maml_point.py); 'pretrained' is the file "
        "'sens0'"),
    "cheetah": (
        {"maml": "maml", "pretrained": "pretrain", "random": "random",
         "oracle": "oracle"},
        "40 target velocities (NumPy legacy seed 1, uniform in [0, 2]); 20 "
        "trajectories of 200 steps per goal and step (batch_size 4000) on "
        "rllab's HalfCheetah (HalfCheetahEnvRand); first step 0.1, then "
        "0.05 for MAML and the random initialization, 0.02 then 0.01 for "
        "the pretrained policy; MAML's checkpoint is iteration 475 of 40 "
        "tasks x 10 trajectories (maml_examples/test_maml_cheetah.py)"),
}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = os.path.join(sys.argv[1], "icml")
    for experiment, (runs, protocol) in EXPERIMENTS.items():
        returns = {}
        for name, run in runs.items():
            path = os.path.join(folder,
                                f"icml_{experiment}_results_{run}.pkl")
            with open(path, "rb") as f:
                steps = pickle.load(f, encoding="latin1")["task_avg_returns"]
            returns[name] = [[float(v) for v in step] for step in steps]
        out = {
            "source": f"cbfinn/maml_rl, icml/icml_{experiment}_results_*.pkl "
                      "(MIT licence, copyright rllab contributors)",
            "protocol": protocol,
            "returns_per_step_and_goal": returns,
        }
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            f"maml_rl_{experiment}_results.json")
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
