"""Speed and memory benchmarks: `make bench` (python -m benchmarks) prints the figures.

Each benchmark measures the thing and its baseline in the same run and reports the ratio,
because these machines are noisy: absolute numbers move, ratios mostly don't.
"""
