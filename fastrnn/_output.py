"""Files fastrnn writes (JSON logs and reports, checkpoints): strict JSON, and atomic replacement.

``replaced(path)`` hands out a temporary file in the same folder and renames it over ``path`` only
when the block succeeds, so an interrupted write never destroys the last good file; on any error the
temporary file is removed.
"""

import contextlib
import json
import math
import os
import tempfile

__all__ = ["jsonable", "replaced", "write_bytes", "write_json"]


def jsonable(obj):
    """``obj`` with non-finite floats as strings ("nan", "inf"), tuples as lists, NumPy scalars as
    Python numbers and anything else JSON cannot hold as its ``str``: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):  # NumPy scalars
        return jsonable(obj.item())
    return str(obj)


@contextlib.contextmanager
def replaced(path):
    """``with replaced(path) as tmp:`` write the new file to ``tmp``; it becomes ``path`` at the end."""
    path = os.path.abspath(os.fspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(path))
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_bytes(path, data):
    """``data`` to ``path``, atomically."""
    with replaced(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_json(path, obj):
    """``obj`` as indented strict JSON to ``path``, atomically."""
    write_bytes(path, (json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n").encode("utf-8"))
