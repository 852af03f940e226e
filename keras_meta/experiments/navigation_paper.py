"""2D navigation on the MAML paper's evaluation protocol, paired per goal
with the paper's own returns; run by `benchmarks/meta_rl_navigation.py
--protocol paper`.

The paper's protocol (Finn et al., 2017; its code, cbfinn/maml_rl,
`maml_examples/test_maml_point.py`): its 40 test goals
(`keras_meta.rl.Navigation2D.paper_test_goals`), 40 trajectories per goal
and adaptation step, an inner step of 0.5 for the first step and 0.25
after. Here every learner is trained as `keras_meta.experiments.navigation`
trains it, for each of several seeds; a learner's checkpoint is the one
with the best mean validation return after 1 to 3 steps on 40 validation
goals that are not test goals (evaluated every `eval_every` iterations),
and the pretrained and random baselines get their step size (first step;
half of it after) chosen on the same validation goals. Each learner's
per-goal test returns are then paired with the paper's per-goal returns of
the same goals: the mean difference and its 95% interval per step.
"""

import json
import os
import time

import keras
import numpy as np

from keras_meta import rl
from keras_meta.experiments import navigation
from keras_meta.metrics import t_95

LEARNERS = ("maml", "promp", "pretrained", "random")
# The paper's row each learner is paired with.
PAPER_ROW = {"maml": "maml", "promp": "maml", "pretrained": "pretrained",
             "random": "random"}
BASELINE_RATES = (0.05, 0.1, 0.25, 0.5, 1.0)


def _paired(ours, paper):
    """Mean and 95% CI over goals of `ours - paper`, per step."""
    diff = np.asarray(ours, "float64") - np.asarray(paper, "float64")
    count = diff.shape[0]
    return {"mean": [float(v) for v in diff.mean(0)],
            "ci95": [float(v) for v in t_95(count - 1) * diff.std(0, ddof=1)
                     / np.sqrt(count)]}


def _choose_rate(learner, validation, eval_steps, eval_trajectories, seed,
                 rates):
    """The baseline's first step size, chosen on the validation goals."""
    scores = {}
    for rate in rates:
        learner.eval_learning_rates = [rate, rate / 2]
        returns = learner.adaptation_returns(
            validation, num_steps=eval_steps,
            num_trajectories=eval_trajectories, seed=seed)
        scores[rate] = float(returns[:, 1:].mean())
    best = max(scores, key=scores.get)
    learner.eval_learning_rates = [best, best / 2]
    return best, scores


def run(*, paper_returns, learners=LEARNERS, seeds=(0, 1, 2), output,
        iterations=300, meta_batch_size=20, num_trajectories=20,
        inner_learning_rate=0.5, learning_rate=1e-3, eval_every=25,
        eval_steps=3, eval_trajectories=40, baseline_rates=BASELINE_RATES,
        command=None, verbose=0):
    """Trains and scores `learners` for each seed; writes JSON to `output`
    after each learner (a cut-short run keeps what it finished).

    Args:
        paper_returns: Dict from the paper's row name (`"maml"`,
            `"pretrained"`, `"random"`) to its per-step, per-goal returns
            `[steps, 40]` (`benchmarks/reference/
            maml_rl_point_results.json`).
    """
    env = rl.Navigation2D()
    test = env.paper_test_goals()
    # Validation goals: a stream neither training nor the test uses.
    validation = env.sample_tasks(40, seed=20_000)
    config = dict(iterations=iterations, meta_batch_size=meta_batch_size,
                  num_trajectories=num_trajectories,
                  inner_learning_rate=inner_learning_rate,
                  eval_learning_rates=[inner_learning_rate,
                                       inner_learning_rate / 2],
                  learning_rate=learning_rate, eval_every=eval_every,
                  eval_steps=eval_steps, eval_trajectories=eval_trajectories,
                  baseline_rates=list(baseline_rates), seeds=list(seeds),
                  test_goals="Navigation2D.paper_test_goals()",
                  validation_goals="Navigation2D().sample_tasks(40, "
                                   "seed=20000)",
                  checkpoint="best mean validation return after 1-"
                             f"{eval_steps} steps, every {eval_every} "
                             "iterations")
    paper = {name: [float(np.mean(step)) for step in rows[:eval_steps + 1]]
             for name, rows in paper_returns.items()}
    runs = {name: [] for name in learners}
    start = time.perf_counter()

    def write():
        summary = {}
        for name, done in runs.items():
            if not done:
                continue
            means = np.array([r["test"]["mean"] for r in done])
            diffs = np.array([r["minus_paper"]["mean"] for r in done])
            summary[name] = {
                "seeds": len(done),
                "test_mean_over_seeds": means.mean(0).tolist(),
                "test_seed_range": [means.min(0).tolist(),
                                    means.max(0).tolist()],
                "minus_paper_over_seeds": diffs.mean(0).tolist(),
                "minus_paper_seed_range": [diffs.min(0).tolist(),
                                           diffs.max(0).tolist()]}
        directory = os.path.dirname(output)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(output, "w") as f:
            json.dump({"command": command, "config": config,
                       "paper": paper, "summary": summary, "runs": runs,
                       "seconds": round(time.perf_counter() - start, 1)},
                      f, indent=1)

    for seed in seeds:
        for name in learners:
            begin = time.perf_counter()
            keras.utils.set_random_seed(seed)
            learner = navigation.build(
                name, env, inner_learning_rate=inner_learning_rate,
                num_trajectories=num_trajectories, seed=seed)
            learner.compile(optimizer=keras.optimizers.Adam(learning_rate))
            record = {"seed": seed}
            if name != "random":
                callback = rl.AdaptationReturns(
                    validation, num_steps=eval_steps, seed=seed + 1,
                    restore_best_weights=True)
                learner.fit(env.task_dataset(meta_batch_size, seed=seed),
                            steps_per_epoch=eval_every,
                            epochs=max(1, iterations // eval_every),
                            callbacks=[callback], verbose=verbose)
                record["checkpoint_iteration"] = (
                    callback.best_epoch * eval_every)
                record["validation_curve"] = [
                    {"iterations": h["epoch"] * eval_every,
                     "mean": h["mean"]} for h in callback.history]
            if name in ("pretrained", "random"):
                rate, scores = _choose_rate(
                    learner, validation, eval_steps, eval_trajectories,
                    seed + 3, baseline_rates)
                record["step_size"] = rate
                record["validation_by_step_size"] = scores
            else:
                learner.eval_learning_rates = config["eval_learning_rates"]
            returns = learner.adaptation_returns(
                test, num_steps=eval_steps,
                num_trajectories=eval_trajectories, seed=seed + 2)
            reference = np.asarray(
                paper_returns[PAPER_ROW[name]][:eval_steps + 1]).T
            record["test"] = rl.summarize_returns(returns)
            record["test_per_goal"] = returns.tolist()
            record["minus_paper"] = _paired(returns, reference)
            record["seconds"] = round(time.perf_counter() - begin, 1)
            runs[name].append(record)
            print(f"seed {seed} {name:>10}: " + " / ".join(
                f"{m:.1f}" for m in record["test"]["mean"])
                + "; minus the paper's per goal: " + " / ".join(
                    f"{m:+.1f} +- {c:.1f}" for m, c in zip(
                        record["minus_paper"]["mean"],
                        record["minus_paper"]["ci95"]))
                + f" ({record['seconds']} s)", flush=True)
            write()
    return runs


def format_table(result):
    """A Markdown table of the summary: mean test return over seeds after
    0-3 steps, the paper's, and the paired per-goal difference."""
    lines = ["| learner | seeds | return after 0 / 1 / 2 / 3 steps | paper |"
             " ours minus paper, per goal (mean over seeds) |",
             "| --- | --- | --- | --- | --- |"]
    for name, row in result["summary"].items():
        paper = result["paper"].get(PAPER_ROW[name], [])
        lines.append(
            f"| {name} | {row['seeds']} | "
            + " / ".join(f"{v:.1f}" for v in row["test_mean_over_seeds"])
            + " | " + " / ".join(f"{v:.1f}" for v in paper) + " | "
            + " / ".join(f"{v:+.1f}" for v in row["minus_paper_over_seeds"])
            + " |")
    return "\n".join(lines)
