"""Side-by-side performance runs: `python -m benchmarks` (see README.md)."""
