"""Benchmarks and evaluations (the ``research`` extra; never imported by a scan)."""
