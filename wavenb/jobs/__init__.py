"""The lifecycle of one paid generation (``job.Job``) and what it needs.

The request, the session it runs in, the submit gate, the poll loop, verified downloads,
resume and reconciliation.
"""
