"""Settings modules: ``dev`` (default), ``test`` and ``production``; shared values in ``base``."""
