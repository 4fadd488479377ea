"""The thin API layer: one HTTP shell (``http``), the resources over it (``resources``), and the
embedded sandbox's transport (``embedded``). No journal, no waiting, no money decisions here."""
