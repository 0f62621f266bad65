"""The derivation report: audit results + plug-in sections -> Jinja2 -> LaTeX -> PDF.

``reports`` imports everything else; nothing in ``symbolic``, ``numeric`` or ``derivations``
imports ``reports``.  Entry point: ``lora-audit report`` (``derivations.commands.report``).
"""
