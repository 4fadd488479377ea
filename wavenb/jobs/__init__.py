"""The lifecycle of one paid generation (``job.Job``) and what drives it: the request, the
session it runs in, the submit gate, verified downloads, resume and reconciliation."""
