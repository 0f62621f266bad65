"""One module per theorem; each defines ``ORDER`` and ``DERIVATIONS``."""
