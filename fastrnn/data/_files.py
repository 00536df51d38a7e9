"""Where the package's data files live, and the one error every loader raises for a bad file."""

import os

__all__ = ["DataFileError", "package_file"]

_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files")


class DataFileError(ValueError):
    """A data file that exists but cannot be used: not UTF-8, not the expected format, too small, ..."""


def package_file(name):
    """The path of a data file shipped inside fastrnn (``fastrnn/data/files/<name>``)."""
    path = os.path.join(_DIR, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"fastrnn's data file {path!r} is missing: the installation is incomplete "
                                f"(reinstall fastrnn)")
    return path
