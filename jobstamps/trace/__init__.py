"""Traced dependencies: what a command read, found by watching it run (``--trace``)."""
