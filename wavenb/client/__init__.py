"""The public clients: ``AsyncClient`` and the blocking ``Client``."""
