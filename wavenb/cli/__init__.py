"""The ``wavenb`` command line."""
