"""Errors the CLI reports as one clear line (the traceback only with ``--debug``)."""

__all__ = ["SariseError"]


class SariseError(RuntimeError):
    """A run could not finish; the message says which input and why."""
