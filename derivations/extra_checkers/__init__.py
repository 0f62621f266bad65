"""Checker plug-ins: every module here is imported before an audit, so a module that decorates
functions with ``derivations.checkers.checker("name")`` makes those checkers available."""
