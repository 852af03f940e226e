"""Cold-start recommendation on MovieLens-100K with MeLU's, MAMO's or
RecBole-MetaRec's protocol.

Global mean, a pretrained recommender fine-tuned per user, MeLU (`ANIL`
adapting the decision layers), MAML and Meta-SGD, all on
`keras_meta.recommendation.field_recommender`, with inner rates and steps (and the
fine-tuning's) chosen on validation users, scored per user
(MAE, RMSE; nDCG@k, and RecBole-MetaRec's precision@k and nDCG@k; mean and
95% CI over users) in each of the protocol's states, plus paired per-user
MAE differences against the baselines. See
`keras_meta.experiments.movielens`. Needs the MovieLens files: `--data-dir`,
or the copy in the recbole wheel (`pip install --no-deps recbole==1.2.1`).

    python benchmarks/movielens_cold_start.py
    python benchmarks/movielens_cold_start.py --protocol mamo \
        --output benchmarks/results/movielens_mamo.json
    python benchmarks/movielens_cold_start.py --protocol recbole \
        --learners global_mean,pretrained,melu \
        --output benchmarks/results/movielens_recbole.json
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_meta.experiments import movielens  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--learners", default=",".join(movielens.LEARNERS))
    parser.add_argument("--protocol", default="melu",
                        choices=list(movielens.PROTOCOLS),
                        help="melu (new users and new items), mamo (first "
                             "20 ratings, time-based states) or recbole "
                             "(RecBole-MetaRec's: MeLU's without new items)")
    parser.add_argument("--meta-epochs", type=int, default=30)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--meta-batch-size", type=int, default=32)
    parser.add_argument("--inner-learning-rates", default="0.03,0.1,0.3",
                        help="meta-learners' inner rates, chosen on "
                             "validation users")
    parser.add_argument("--inner-steps", default="1,5",
                        help="inner steps (meta-learners and fine-tuning), "
                             "chosen on validation users")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "movielens_cold_start.json"))
    args = parser.parse_args()
    results = movielens.run(
        source=args.data_dir, learners=args.learners.split(","),
        output=args.output, protocol=args.protocol,
        meta_epochs=args.meta_epochs,
        steps_per_epoch=args.steps_per_epoch,
        meta_batch_size=args.meta_batch_size,
        inner_learning_rates=[
            float(v) for v in args.inner_learning_rates.split(",")],
        inner_steps=[int(v) for v in args.inner_steps.split(",")],
        seed=args.seed,
        command="python " + " ".join(sys.argv))
    print()
    print(movielens.format_table(results))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
