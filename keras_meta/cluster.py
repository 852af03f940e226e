"""Training on several processes: a local launcher and the environment each
worker needs.

TensorFlow's `tf.distribute.MultiWorkerMirroredStrategy` reads the cluster
from `TF_CONFIG`; Keras's `keras.distribution.initialize()` (JAX) reads
`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES` and
`KERAS_DISTRIBUTION_PROCESS_ID`. `worker_environments` writes both for a
cluster of hosts, and `launch_local_workers` starts one process per worker
on this machine over loopback ports, as the multi-worker tests do:

```bash
python -m keras_meta.cluster --workers 2 -- python train.py
```

Every worker runs the same script on the same data; the strategy splits
each global meta-batch between them. Nothing here imports TensorFlow or
JAX: the launcher only starts processes.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

__all__ = ["free_ports", "launch_local_workers", "worker_environments"]


def free_ports(count, host="127.0.0.1"):
    """`count` TCP ports that are free on `host` now (the operating
    system's choice; another process may still take one before a worker
    binds it, which makes that worker fail at start-up)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_environments(addresses):
    """The environment variables of each worker of a cluster.

    Args:
        addresses: List of `"host:port"` strings, one per worker; worker 0
            is the chief (it writes checkpoints and logs).

    Returns:
        A list with one dict per worker: `TF_CONFIG` for
        `MultiWorkerMirroredStrategy` and the `KERAS_DISTRIBUTION_*`
        variables for `keras.distribution.initialize()` on JAX (whose
        coordinator is the first address).
    """
    addresses = list(addresses)
    if not addresses:
        raise ValueError("`addresses` must name at least one worker, as "
                         "'host:port'. Received an empty list.")
    for address in addresses:
        host, _, port = str(address).rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                "Each address must be 'host:port', e.g. '10.0.0.2:12345'. "
                f"Received: {address!r}.")
    return [
        {
            "TF_CONFIG": json.dumps({
                "cluster": {"worker": addresses},
                "task": {"type": "worker", "index": index},
            }),
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(addresses),
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(len(addresses)),
            "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
        }
        for index in range(len(addresses))
    ]


def _relay(stream, prefix, sink, lines):
    for line in iter(stream.readline, ""):
        lines.append(line)
        if sink is not None:
            sink.write(prefix + line)
            sink.flush()
    stream.close()


def launch_local_workers(command, num_workers, env=None, timeout=None,
                         stream=True, cwd=None):
    """Runs `command` as `num_workers` worker processes on this machine.

    Each process gets the environment of `worker_environments` for a
    cluster on 127.0.0.1 with free ports. If a worker exits with an error,
    the others (which would wait for it forever in their next collective)
    are stopped at once.

    Args:
        command: List of program arguments, e.g. `["python", "train.py"]`.
        num_workers: Int >= 1.
        env: Optional dict of environment variables for every worker
            (defaults to this process's environment).
        timeout: Optional seconds after which every worker is stopped and
            `TimeoutError` is raised.
        stream: Bool, whether to print each worker's output as it comes,
            every line prefixed with `[worker i]`. Defaults to `True`.
        cwd: Optional working directory of the workers.

    Returns:
        A list with one `subprocess.CompletedProcess` per worker (exit code
        0; `stdout` holds its standard output and error, in order).

    Raises:
        RuntimeError: naming the first worker that failed, its exit code
            and the end of its output.
        TimeoutError: when `timeout` passes first.
    """
    if not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(
            f"`num_workers` must be an int >= 1. Received: {num_workers!r}.")
    if isinstance(command, str) or not command:
        raise ValueError(
            "`command` must be a non-empty list of program arguments, e.g. "
            f"['python', 'train.py']. Received: {command!r}.")
    base = dict(os.environ if env is None else env)
    addresses = [f"127.0.0.1:{port}" for port in free_ports(num_workers)]
    sink = sys.stdout if stream else None
    processes, outputs, relays = [], [], []
    first_failure = None
    try:
        for index, variables in enumerate(worker_environments(addresses)):
            process = subprocess.Popen(
                list(command), env={**base, **variables}, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)
            processes.append(process)
            lines = []
            outputs.append(lines)
            relay = threading.Thread(
                target=_relay, args=(process.stdout, f"[worker {index}] ",
                                     sink, lines), daemon=True)
            relay.start()
            relays.append(relay)
        deadline = None if timeout is None else time.monotonic() + timeout
        while None in [p.poll() for p in processes]:
            failed = [i for i, p in enumerate(processes)
                      if p.returncode not in (None, 0)]
            if failed:
                first_failure = failed[0]
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"{num_workers} workers of {command!r} ran past "
                    f"{timeout} s; all were stopped.")
            time.sleep(0.05)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for relay in relays:
            relay.join(timeout=10)
    results = [subprocess.CompletedProcess(
        list(command), p.returncode, stdout="".join(lines), stderr=None)
        for p, lines in zip(processes, outputs)]
    if first_failure is None:
        first_failure = next((i for i, r in enumerate(results)
                              if r.returncode != 0), None)
    if first_failure is not None:
        index, result = first_failure, results[first_failure]
        raise RuntimeError(
            f"Worker {index} of {num_workers} exited with code "
            f"{result.returncode}; the others were stopped. The end of its "
            f"output:\n{result.stdout[-3000:]}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_meta.cluster",
        description=(
            "Runs a training script as N worker processes on this machine, "
            "each with TF_CONFIG (MultiWorkerMirroredStrategy) and the "
            "KERAS_DISTRIBUTION_* variables (keras.distribution on JAX) of "
            "a local cluster. Example: python -m keras_meta.cluster "
            "--workers 2 -- python train.py"))
    parser.add_argument("--workers", type=int, required=True,
                        help="number of worker processes (>= 1)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds after which every worker is stopped")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the command each worker runs, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --, e.g. -- python train.py")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    try:
        launch_local_workers(command, args.workers, timeout=args.timeout)
    except (RuntimeError, TimeoutError) as error:
        print(f"keras_meta.cluster: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
