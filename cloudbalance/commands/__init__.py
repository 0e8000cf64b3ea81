"""CLI commands, one module per area, each with ``register(app)``.

:mod:`cloudbalance.cli` assembles them and owns the exit codes.
"""
