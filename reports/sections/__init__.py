"""Plug-in report sections: every module here defining ``SECTION`` (a ``reports.section.Section``)
is discovered automatically; see ``reports/section.py`` for the contract."""
