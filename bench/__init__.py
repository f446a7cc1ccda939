"""Benchmarks (not tests): each module runs standalone and reports its headline figures
as ``bench.report.Figure`` values; ``bench/all.py`` runs them all into one table."""
