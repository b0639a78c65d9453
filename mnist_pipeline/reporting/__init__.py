"""Reporting: markdown blocks, plots, one run's report, and comparisons of several runs."""
