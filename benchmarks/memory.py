"""Peak memory of a meta-gradient against the number of inner steps.

For MAML (second order), first-order MAML, iMAML and Reptile on an
Omniglot-shaped configuration (Conv-4 with 64 filters, 28x28x1, 5-way
1-shot with 15 queries, meta-batch 4), compiles the meta-gradient (the
backward pass of `fit()`'s training loss with respect to every weight) with
XLA on the JAX backend and reads the compiled program's temporary memory
from `memory_analysis()`: an exact, noise-free peak of the buffers that
program allocates besides its inputs and outputs, for the device it runs
on (CPU here). Prints a table and writes JSON.

    python benchmarks/memory.py
    python benchmarks/memory.py --steps 1,5 --algorithms maml,imaml

Second-order MAML keeps every inner step's activations for the backward
pass, so its memory grows linearly with the steps; first-order MAML,
Reptile and iMAML (whose implicit gradient never backpropagates through
the inner loop) should stay flat.
"""

import argparse
import json
import os
import time

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import keras  # noqa: E402

import keras_meta  # noqa: E402
from keras_meta import testing  # noqa: E402

BUILDERS = {
    "maml": lambda steps: keras_meta.MAML(
        keras_meta.models.conv4(num_outputs=5, seed=0),
        inner_learning_rate=0.4, num_inner_steps=steps),
    "fomaml": lambda steps: keras_meta.MAML(
        keras_meta.models.conv4(num_outputs=5, seed=0),
        inner_learning_rate=0.4, num_inner_steps=steps, first_order=True),
    "imaml": lambda steps: keras_meta.IMAML(
        keras_meta.models.conv4(num_outputs=5, seed=0),
        inner_learning_rate=0.1, num_inner_steps=steps, cg_steps=5),
    "reptile": lambda steps: keras_meta.Reptile(
        keras_meta.models.conv4(num_outputs=5, seed=0),
        inner_learning_rate=0.1, num_inner_steps=steps),
}


def meta_gradient_memory(meta_model, inputs, labels):
    """Temporary bytes of the compiled meta-gradient, and compile seconds."""
    meta_model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trainable = [v.value for v in meta_model.trainable_variables]
    state = [v.value for v in meta_model.non_trainable_variables]

    def training_loss(trainable, state, inputs, labels):
        outputs, _ = meta_model.stateless_call(
            trainable, state, inputs, training=True)
        return meta_model.compute_loss(inputs, labels, outputs)

    start = time.perf_counter()
    compiled = jax.jit(jax.grad(training_loss)).lower(
        trainable, state, inputs, labels).compile()
    seconds = time.perf_counter() - start
    return compiled.memory_analysis().temp_size_in_bytes, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algorithms", default=",".join(BUILDERS))
    parser.add_argument("--steps", default="1,5,10,20")
    parser.add_argument("--meta-batch-size", type=int, default=4)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "memory.json"))
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    inputs, labels = testing.toy_episodes(
        num_tasks=args.meta_batch_size, num_ways=5, num_shots=1,
        num_queries=15, image_shape=(28, 28, 1))

    table = {}
    for name in args.algorithms.split(","):
        table[name] = {}
        for count in steps:
            keras.backend.clear_session()
            size, seconds = meta_gradient_memory(
                BUILDERS[name](count), inputs, labels)
            table[name][count] = size / 2**20
            print(f"{name:<8} {count:>3} steps: {size / 2**20:8.1f} MiB "
                  f"(compiled in {seconds:.0f} s)", flush=True)

    print()
    print(f"peak temporary memory of one meta-gradient (MiB), Conv-4-64, "
          f"5-way 1-shot, 15 queries, meta-batch {args.meta_batch_size}, "
          f"JAX on {jax.devices()[0].platform}")
    print(f"{'inner steps':<12}" + "".join(f"{n:>10}" for n in table))
    for count in steps:
        print(f"{count:<12}" + "".join(
            f"{table[n][count]:>10.1f}" for n in table))
    print(f"{'last / first':<12}" + "".join(
        f"{table[n][steps[-1]] / table[n][steps[0]]:>10.2f}" for n in table))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"platform": jax.devices()[0].platform,
                   "meta_batch_size": args.meta_batch_size,
                   "mib": table}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
