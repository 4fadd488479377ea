"""``python -m wavenb`` is the ``wavenb`` command."""

from __future__ import annotations

import sys

from wavenb.cli.main import main

sys.exit(main())
