"""Version of the package and of the file formats it writes."""

__version__ = "0.1.0"
