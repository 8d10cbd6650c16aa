"""The package version, read by the build backend and by ``jobstamp --version``."""

__version__ = "1.3.0"
