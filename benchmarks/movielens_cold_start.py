"""Cold-start recommendation on MovieLens-100K with MeLU's, MAMO's or
RecBole-MetaRec's protocol.

Global mean, a pretrained recommender fine-tuned per user, MeLU (`ANIL`
adapting the decision layers) tuned and at its paper's settings, MAML and
Meta-SGD, all on `keras_meta.recommendation.field_recommender`. Every tuned
learner gets the same budget: 24 configurations (outer or pretraining rate
1e-3 and 1e-4, inner or fine-tuning rate 0.001-0.3, 1 or 5 steps), chosen
on validation users. Scored per user (MAE, RMSE; nDCG@k with linear and
MAMO's 2^r gains, and RecBole-MetaRec's precision@k and nDCG@k; mean and
95% CI over users) in each of the protocol's states, plus paired per-user
MAE differences against the baselines. The JSON is rewritten after every
learner, so a cut-short run keeps what it finished. See
`keras_meta.experiments.movielens`. Needs the MovieLens files: `--data-dir`,
or the copy in the recbole wheel (`pip install --no-deps recbole==1.2.1`).

    python benchmarks/movielens_cold_start.py
    python benchmarks/movielens_cold_start.py --protocol mamo \
        --output benchmarks/results/movielens_mamo.json
    python benchmarks/movielens_cold_start.py --protocol recbole \
        --learners global_mean,pretrained,melu \
        --output benchmarks/results/movielens_recbole.json

With `--seeds`, the run is repeated once per seed (initial weights and
episode order) on the split of `--split-seed`, each tuned learner with the
configuration a search chose (`--configurations-from` its JSON; without
it, every seed searches the grid), and the JSON gives the spread over
seeds beside each seed's results:

    python benchmarks/movielens_cold_start.py --seeds 0,1,2 \
        --configurations-from benchmarks/results/movielens_cold_start.json \
        --output benchmarks/results/movielens_cold_start_seeds.json
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_meta.experiments import movielens  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--learners", default=",".join(
        movielens.LEARNERS[:3] + ("melu_paper",) + movielens.LEARNERS[3:]))
    parser.add_argument("--protocol", default="melu",
                        choices=list(movielens.PROTOCOLS),
                        help="melu (new users and new items), mamo (first "
                             "20 ratings, time-based states) or recbole "
                             "(RecBole-MetaRec's: MeLU's without new items)")
    parser.add_argument("--meta-epochs", type=int, default=30)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--meta-batch-size", type=int, default=32)
    rates = "0.001,0.003,0.01,0.03,0.1,0.3"
    parser.add_argument("--inner-learning-rates", default=rates,
                        help="meta-learners' inner rates, chosen on "
                             "validation users")
    parser.add_argument("--fine-tune-rates", default=rates,
                        help="the pretrained model's fine-tuning rates, "
                             "chosen on validation users")
    parser.add_argument("--learning-rates", default="0.001,0.0001",
                        help="outer (and pretraining) rates, chosen on "
                             "validation users")
    parser.add_argument("--inner-steps", default="1,5",
                        help="inner steps (meta-learners and fine-tuning), "
                             "chosen on validation users")
    parser.add_argument("--seed", type=int, default=0,
                        help="initial weights, episode order and (unless "
                             "--split-seed) the split of users")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="the split of users (default: --seed; 0 with "
                             "--seeds)")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds: one run per seed, and "
                             "their spread")
    parser.add_argument("--configurations-from", default=None,
                        help="a result JSON of this benchmark: each tuned "
                             "learner keeps the configuration it chose there "
                             "instead of searching")
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "movielens_cold_start.json"))
    args = parser.parse_args()
    configurations = None
    if args.configurations_from:
        with open(args.configurations_from) as f:
            configurations = movielens.chosen_configurations(
                json.load(f)["results"])
    common = dict(
        source=args.data_dir, learners=args.learners.split(","),
        protocol=args.protocol,
        meta_epochs=args.meta_epochs,
        steps_per_epoch=args.steps_per_epoch,
        meta_batch_size=args.meta_batch_size,
        inner_learning_rates=[
            float(v) for v in args.inner_learning_rates.split(",")],
        inner_steps=[int(v) for v in args.inner_steps.split(",")],
        fine_tune_rates=[float(v) for v in args.fine_tune_rates.split(",")],
        learning_rates=[float(v) for v in args.learning_rates.split(",")],
        command="python " + " ".join(sys.argv))
    if args.seeds:
        summary = movielens.run_seeds(
            seeds=[int(v) for v in args.seeds.split(",")],
            configurations=configurations, output=args.output,
            split_seed=args.split_seed or 0, **common)
        print()
        print(movielens.format_seeds_table(summary["across_seeds"]))
        print(f"wrote {args.output}")
        return
    results = movielens.run(
        output=args.output, seed=args.seed, split_seed=args.split_seed,
        configurations=configurations, **common)
    print()
    print(movielens.format_table(results))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
