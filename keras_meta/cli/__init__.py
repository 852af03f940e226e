"""The `keras-meta` command.

`main` parses and checks the command line before anything loads
TensorFlow (`parser`, `checks`), so that `--help` and argument errors
answer at once; `commands` runs what was asked.
"""

import os

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
    # Read by TensorFlow when first imported, below: silences its start-up
    # and CUDA-probe logs unless the user asked for them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_meta.cli import commands

    return commands.run(parsers, args, command=argv is None)
