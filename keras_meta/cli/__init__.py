"""The `keras-meta` command.

`main` parses and checks the command line before anything loads
TensorFlow (`parser`, `checks`), so that `--help` and argument errors
answer at once; `commands` runs what was asked.
"""

import os
import sys

from keras_meta.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv=None):
    """`keras-meta`: parses `argv` (default: the command line), then runs.

    Returns the process's exit status.
    """
    parsers = build_parser()
    args = parsers[0].parse_args(argv)
    if args.command == "train":
        from keras_meta.cli.checks import resolve_train_arguments

        resolve_train_arguments(parsers[1], args)
        if args.workers > 1 and "TF_CONFIG" not in os.environ:
            return _launch_workers(args, argv)
    # Read by TensorFlow when first imported, below: silences its start-up
    # and CUDA-probe logs unless the user asked for them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_meta.cli import commands

    return commands.run(parsers, args, command=argv is None)


def _launch_workers(args, argv):
    """`keras-meta train --workers N`: the same command as N worker
    processes of a cluster on this machine (`keras_meta.cluster`), which
    train under MultiWorkerMirroredStrategy; returns their exit status."""
    from keras_meta import cluster

    command = [sys.executable, "-m", "keras_meta",
               *(sys.argv[1:] if argv is None else argv)]
    print(f"keras-meta: training with {args.workers} worker processes on "
          "this machine (worker 0 writes the files)", flush=True)
    try:
        cluster.launch_local_workers(command, args.workers)
    except RuntimeError as error:
        print(f"keras-meta: {error}", file=sys.stderr)
        return 1
    return 0
