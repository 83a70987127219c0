"""Plugins shipped with Chameleon (always discovered): logger, hello, notification."""
