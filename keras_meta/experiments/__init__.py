"""Complete, reproducible experiments behind the `keras-meta` command."""
