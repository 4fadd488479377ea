"""Prompt A/B comparisons: design, run, judge, measure, report."""
