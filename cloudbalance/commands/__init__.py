"""CLI commands, one module per area, each with ``register(app)``; assembled by :mod:`cloudbalance.cli`."""
