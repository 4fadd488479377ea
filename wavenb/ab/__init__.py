"""Prompt A/B comparisons (``wavenb.compare``): design, plan, run, measure, judge, report.

Named ``ab`` rather than ``compare`` so that the package never shadows the public function
``wavenb.compare`` (importing a subpackage binds its name on the parent package).
"""
