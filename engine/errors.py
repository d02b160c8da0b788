"""The one error type the user is meant to read: part of the small shared types that scenes/ may import."""

from __future__ import annotations


class SkyloopError(Exception):
    """An error whose message is meant for the user: the CLI prints it without a traceback."""
