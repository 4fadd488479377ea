"""The thin API layer: the HTTP shell, the resources over it, the embedded sandbox's transport.

``http`` sends and reads, ``resources`` names what the API offers, ``embedded`` bootstraps
the in-process sandbox. No journal, no waiting, no money decisions here.
"""
