"""Helpers of bench/bench.py: the upstream tree, the systems under test, load, scenarios, report."""
