"""`python -m keras_meta`: the `keras-meta` command."""

import sys

from keras_meta.cli import main

sys.exit(main())
