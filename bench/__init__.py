"""rotsafe's benchmarks: rotsafe against the alternatives, side by side.

Run ``python -m bench`` from the repository root (``--help`` for options).
Every figure is a median over repeated runs with its spread, and every
comparison a ratio of figures measured in the same run.
"""
