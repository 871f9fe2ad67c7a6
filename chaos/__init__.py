"""Fault campaigns against the local stack: ``make chaos`` (host kills + injected faults) and ``make fuzz``.

Measured, not assumed: each run prints its figures and exits non-zero when one is wrong.
"""
