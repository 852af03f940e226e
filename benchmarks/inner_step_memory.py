"""Resident memory of a TensorFlow meta-step against the number of inner steps.

`benchmarks/memory.py` reads XLA's buffer assignment on JAX; this measures
what a TensorFlow user sees: the peak resident memory of `train_on_batch`'s
first call (VmHWM, above the memory after imports, model and data) and the
median time of the calls after it, for second-order MAML, first-order MAML
second-order MAML with its inner loop rematerialized
(`remat_inner_steps=True`) and iMAML (inner rate 0.1, its default 5
conjugate-gradient steps and regularizer 2) on
`benchmarks/conv_step.py`'s Omniglot configuration (learn2learn's Conv-4-64
with BatchNorm, 28x28x1, 5-way 1-shot, 15 queries, meta-batch 32,
`task_gradients="auto"`: task by task), each count of inner steps in a
fresh process. Prints a table and writes JSON.

    python benchmarks/inner_step_memory.py
    python benchmarks/inner_step_memory.py --inner-steps 1 5 --learners maml
    python benchmarks/inner_step_memory.py --learners maml maml_remat \
        --output benchmarks/results/inner_step_memory_remat.json
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LEARNERS = ("maml", "maml_remat", "first_order", "imaml")


def worker(learner_name, inner_steps, steps, batch_norm, config_name):
    import keras

    sys.path.insert(0, HERE)
    import conv_step

    import keras_meta

    config = dict(conv_step.CONFIGS[config_name], inner_steps=inner_steps)
    keras.utils.set_random_seed(0)
    network = conv_step.keras_network(config)
    if learner_name == "imaml":
        learner = keras_meta.IMAML(network, inner_learning_rate=0.1,
                                   num_inner_steps=inner_steps,
                                   batch_norm=batch_norm)
    else:
        learner = keras_meta.MAML(
            network, inner_learning_rate=config["inner_learning_rate"],
            num_inner_steps=inner_steps,
            first_order=learner_name == "first_order",
            remat_inner_steps=learner_name == "maml_remat",
            batch_norm=batch_norm)
    learner.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return conv_step.time_train_on_batch(learner, config, steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inner-steps", nargs="+", type=int,
                        default=[1, 2, 5, 10])
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS),
                        choices=LEARNERS)
    parser.add_argument("--steps", type=int, default=2,
                        help="calls timed after the first")
    parser.add_argument("--batch-norm", default="transductive",
                        choices=["transductive", "inductive"])
    parser.add_argument("--config", default="omniglot",
                        choices=["omniglot", "mini_imagenet"],
                        help="a configuration of benchmarks/conv_step.py")
    parser.add_argument("--output", default=os.path.join(
        HERE, "results", "inner_step_memory.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        row = worker(args.worker, args.inner, args.steps, args.batch_norm,
                     args.config)
        print("RESULT " + json.dumps(row), flush=True)
        return

    sys.path.insert(0, HERE)
    import conv_step

    rows = []
    for learner in args.learners:
        for inner in args.inner_steps:
            result = conv_step.run_timing_worker(
                __file__, [learner, "--inner", str(inner), "--steps",
                           str(args.steps), "--batch-norm", args.batch_norm,
                           "--config", args.config],
                "tensorflow", f"{learner} with {inner} inner steps")
            rows.append({"learner": learner, "inner_steps": inner,
                         **result})
            print(f"{learner}, {inner} inner steps: "
                  f"{result['above_setup_mb']:.0f} MB above setup, "
                  f"{result['median_step_s']:.2f} s/step, first call "
                  f"{result['first_call_s']:.1f} s", flush=True)
    print()
    print("| learner | inner steps | memory above setup (MB) | s per step "
          "| first call (s) |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['learner']} | {row['inner_steps']} | "
              f"{row['above_setup_mb']:.0f} | {row['median_step_s']:.2f} | "
              f"{row['first_call_s']:.1f} |")
    sys.path.insert(0, HERE)
    from meta_step import write_result

    write_result(args.output, "inner_step_memory.py",
                 {"config": args.config, "batch_norm": args.batch_norm,
                  "rows": rows})


if __name__ == "__main__":
    main()
