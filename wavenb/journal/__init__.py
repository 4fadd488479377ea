"""The journal: the SQLite record of every paid submission (see ``store``)."""
