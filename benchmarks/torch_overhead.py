"""What Keras adds to a convolutional forward pass on the torch backend.

`benchmarks/conv_step.py` runs keras_meta on the torch backend beside
learn2learn on the same PyTorch kernels. This benchmark measures where the
difference goes: it times, in one process on `KERAS_BACKEND=torch`, the
forward pass (training mode, batch statistics) of learn2learn's Conv-4
(`conv_step.keras_network`, channels first, PyTorch's layout; the private
copy keras_meta runs in its transductive passes, whose BatchNormalization
layers call PyTorch's batch-norm kernel) on an
Omniglot support set (5 x 1 x 28 x 28) and query set (75 x 1 x 28 x 28),
four ways:

- `keras_call`: `model(x, training=True)`, Keras's `Layer.__call__` for
  the model and each of its 18 layers;
- `stateless_call`: `model.stateless_call(trainable, non_trainable, x,
  training=True)`, how keras_meta runs the model on fast weights;
- `layer_calls`: each layer's own `call()` in turn: Keras's ops without
  `Layer.__call__`;
- `torch_module`: the same network as a `torch.nn.Sequential` of
  `Conv2d`, `BatchNorm2d`, `ReLU`, `MaxPool2d` and `Linear` with the same
  weights (learn2learn's modules are these), checked to give the same
  outputs first;

and the inner step's gradient (`torch.autograd.grad(..., create_graph=True)`
of the summed outputs) through `stateless_call` and through the module.
Before timing, outputs and gradients are checked equal to the module's.
One intra-op thread by default (`--threads`), so the numbers are per-core
costs; the cases alternate in `--rounds` rounds of `--calls` calls, and the
table gives the median milliseconds per call and the difference to the
module. A MAML meta-step on Omniglot (meta-batch 32) runs 32 support
passes with their gradient and 32 query passes. Prints a table and writes
JSON.

    KERAS_BACKEND=torch python benchmarks/torch_overhead.py
"""

import argparse
import json
import os
import statistics
import sys
import time

if os.environ.get("KERAS_BACKEND") != "torch":
    sys.exit("Run with KERAS_BACKEND=torch: this benchmark times Keras's "
             "torch backend (KERAS_BACKEND=torch python "
             "benchmarks/torch_overhead.py).")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conv_step  # noqa: E402

from keras_meta.algorithms import normalization  # noqa: E402

TOLERANCE = 1e-4


def torch_module(network, config):
    """The Keras network as a `torch.nn.Sequential` with its weights."""
    layers = []
    channels = config["shape"][-1]
    for i in range(conv_step.BLOCKS):
        conv = network.get_layer(f"conv_{i}")
        norm = network.get_layer(f"batch_norm_{i}")
        module = torch.nn.Conv2d(channels, config["filters"], 3, padding=1)
        bn = torch.nn.BatchNorm2d(config["filters"], eps=conv_step.EPSILON)
        with torch.no_grad():
            # Keras kernels are (height, width, in, out).
            module.weight.copy_(conv.kernel.value.permute(3, 2, 0, 1))
            module.bias.copy_(conv.bias.value)
            bn.weight.copy_(norm.gamma.value)
            bn.bias.copy_(norm.beta.value)
        layers += [module, bn, torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        channels = config["filters"]
    dense = network.get_layer("logits")
    linear = torch.nn.Linear(dense.kernel.shape[0], dense.kernel.shape[1])
    with torch.no_grad():
        linear.weight.copy_(dense.kernel.value.T)
        linear.bias.copy_(dense.bias.value)
    layers += [torch.nn.Flatten(), linear]
    return torch.nn.Sequential(*layers).train()


def cases(network, module):
    import keras

    trainable = [v.value for v in network.trainable_variables]
    non_trainable = [v.value for v in network.non_trainable_variables]

    def keras_call(x):
        return network(x, training=True)

    def stateless_call(x):
        return network.stateless_call(trainable, non_trainable, x,
                                      training=True)[0]

    def layer_calls(x):
        for layer in network.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                x = layer.call(x, training=True)
            else:
                x = layer.call(x)
        return x

    def stateless_gradient(x):
        weights = [w.detach().requires_grad_(True) for w in trainable]
        outputs = network.stateless_call(weights, non_trainable, x,
                                         training=True)[0]
        return torch.autograd.grad(outputs.sum(), weights,
                                   create_graph=True)

    parameters = list(module.parameters())

    def module_gradient(x):
        return torch.autograd.grad(module(x).sum(), parameters,
                                   create_graph=True)

    forward = {"keras_call": keras_call, "stateless_call": stateless_call,
               "layer_calls": layer_calls, "torch_module": module}
    gradient = {"stateless_call": stateless_gradient,
                "torch_module": module_gradient}
    return forward, gradient


def check_same_function(forward, gradient, x):
    """Stops the benchmark unless every case computes the module's outputs
    and the gradient cases its gradients (compared by each weight's norm,
    which does not depend on the kernels' layouts, relative to the largest
    norm)."""
    reference = forward["torch_module"](x).detach().numpy()
    differences = {name: float(np.max(np.abs(
        fn(x).detach().numpy() - reference))) for name, fn in forward.items()}
    norms = {name: np.array([float(g.detach().norm()) for g in fn(x)])
             for name, fn in gradient.items()}
    # Relative to the largest norm: the convolutions' biases, followed by
    # batch normalization, have gradients that are zero up to rounding.
    scale = norms["torch_module"].max()
    for name, values in norms.items():
        differences[f"{name} gradient"] = float(
            np.max(np.abs(values - norms["torch_module"])) / scale)
    for name, difference in differences.items():
        if difference > TOLERANCE:
            raise RuntimeError(
                f"{name} differs from the torch module by {difference:.3g} "
                f"(more than {TOLERANCE}): not the same function")


def time_cases(fns, x, rounds, calls):
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn(x)
            start = time.perf_counter()
            for _ in range(calls):
                fn(x)
            samples[name].append(
                1e3 * (time.perf_counter() - start) / calls)
    return {name: {"median_ms": statistics.median(values),
                   "rounds_ms": [round(v, 4) for v in values]}
            for name, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--output", default=os.path.join(
        "benchmarks", "results", "torch_overhead.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import keras

    keras.utils.set_random_seed(0)
    config = conv_step.CONFIGS["omniglot"]
    network = conv_step.keras_network(config, "channels_first")
    module = torch_module(network, config)
    # What keras_meta runs in its transductive passes (learn2learn's
    # function): a private copy whose BatchNormalization layers call
    # PyTorch's batch-norm kernel.
    fused = normalization.fused_copy(network)
    fused.set_weights(network.get_weights())
    forward, gradient = cases(fused, module)
    rng = np.random.default_rng(0)
    side = config["shape"][0]
    rows = []
    results = {}
    for what, count in (("support", conv_step.WAYS * conv_step.SHOTS),
                        ("query", conv_step.WAYS * conv_step.QUERIES)):
        x = torch.from_numpy(rng.uniform(
            size=(count, config["shape"][-1], side, side)).astype("float32"))
        check_same_function(forward, gradient, x)
        timed = {"forward": time_cases(forward, x, args.rounds, args.calls),
                 "forward_and_gradient": time_cases(
                     gradient, x, args.rounds, args.calls)}
        results[what] = timed
        for pass_name, by_case in timed.items():
            base = by_case["torch_module"]["median_ms"]
            for name, value in by_case.items():
                rows.append((what, pass_name, name, value["median_ms"],
                             value["median_ms"] - base))
    print(f"| inputs | pass | how | ms per call ({args.threads} thread) "
          "| above the torch module (ms) |")
    print("| --- | --- | --- | --- | --- |")
    for what, pass_name, name, value, above in rows:
        print(f"| {what} | {pass_name} | {name} | {value:.3f} | "
              f"{above:+.3f} |")
    support = results["support"]
    query = results["query"]
    per_task = {
        name: support["forward_and_gradient"][name]["median_ms"]
        + query["forward"][name]["median_ms"]
        for name in ("stateless_call", "torch_module")}
    tasks = config["meta_batch"]
    estimate = tasks * (per_task["stateless_call"]
                        - per_task["torch_module"])
    print(f"per MAML task (support pass with gradient + query pass): "
          f"Keras {per_task['stateless_call']:.2f} ms, module "
          f"{per_task['torch_module']:.2f} ms; x {tasks} tasks: "
          f"{estimate / 1e3:.3f} s per meta-step above the module")
    record = {
        "command": "KERAS_BACKEND=torch python "
                   "benchmarks/torch_overhead.py"
                   + "".join(f" --{k} {v}" for k, v in (
                       ("threads", args.threads), ("rounds", args.rounds),
                       ("calls", args.calls))
                       if v != parser.get_default(k)),
        "config": vars(args),
        "versions": {"torch": torch.__version__,
                     "keras": keras.__version__},
        "network": "learn2learn's Conv-4 (64 filters), channels first",
        "what": "median milliseconds per call over rounds; forward in "
                "training mode (batch statistics); forward_and_gradient "
                "adds torch.autograd.grad(sum of outputs, weights, "
                "create_graph=True)",
        "results": results,
        "per_task_ms": per_task,
        "meta_batch": tasks,
        "meta_step_above_module_s": estimate / 1e3,
    }
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
