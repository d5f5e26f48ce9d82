"""One module per ``vega`` subcommand, each with ``register(subparsers)`` and ``run(args)``."""
