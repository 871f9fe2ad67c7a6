"""The Pulumi program's building blocks: one module per concern, wired by ``infra/stack.py``."""
