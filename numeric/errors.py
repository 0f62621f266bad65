"""Errors that mean "bad input": the command line turns them into a clear message and exit 2."""


class InputError(ValueError):
    """A parameter, configuration or request the project refuses, with the reason."""
