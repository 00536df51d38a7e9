"""What ``fastrnn check --module/--model`` checks: a file path or a dotted module name, made importable.

A file is imported the way its own code expects to be imported, without installing anything:

* inside a package (its directory has an ``__init__.py``, and so on upwards), as part of it:
  ``assignment3/cs231n/rnn_layers.py`` is ``cs231n.rnn_layers`` with ``assignment3`` on
  ``sys.path``, so ``from .layers import *`` works;
* with relative imports but no ``__init__.py`` (a namespace package, as in some years of the
  assignment), as deep in its directories as its deepest relative import needs;
* when it imports its enclosing directory by name (``from cs231n.layers import *`` inside
  ``cs231n/``), with that directory's parent on ``sys.path``;
* otherwise as a top-level module, its directory on ``sys.path`` (``import layers`` works).

A dotted name is imported with the current directory first on ``sys.path``, as ``python -m``
does. Only the child process (``worker``) imports anything; this module only reads files.
"""

import ast
import os
from dataclasses import dataclass, field
from typing import Optional, Tuple

__all__ = ["Target", "TargetError", "resolve", "split_class"]


class TargetError(ValueError):
    """The target cannot be checked (no such file, not importable, no such class): a usage error."""


@dataclass(frozen=True)
class Target:
    text: str  # as the user gave it
    module: str  # the dotted name it is imported as
    sys_path: Tuple[str, ...]  # directories put first on sys.path, in order
    root: str  # the checked code: files under this directory (for file:line)
    file: Optional[str] = None  # the file, when given as a path
    attr: Optional[str] = None  # the class, for --model
    notes: Tuple[str, ...] = field(default_factory=tuple)

    def display(self):
        where = self.text if self.file is None else _short(self.file)
        return where if self.file is None or self.module == os.path.splitext(os.path.basename(self.file))[0] \
            else f"{where} (as {self.module})"


def _short(path):
    """``path`` relative to the current directory when it is below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith(os.pardir) else rel


def short_path(path):
    return _short(path)


def split_class(text, default="CaptioningRNN"):
    """``"path/rnn.py:CaptioningRNN"`` -> ("path/rnn.py", "CaptioningRNN"); without a class, ``default``."""
    head, sep, tail = text.rpartition(":")
    if sep and tail.isidentifier() and head and not (len(head) == 1 and head.isalpha()):  # not "C:\..."
        return head, tail
    return text, default


def _imports(path):
    """(deepest relative import level, top-level names of absolute imports) of the file's code."""
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), filename=path)
    except (SyntaxError, ValueError, OSError):
        return 0, set()  # the import itself will report it
    level, names = 0, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                level = max(level, node.level)
            elif node.module:
                names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
    return level, names


def _from_file(text, attr):
    path = os.path.abspath(text)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "__init__.py")):
            raise TargetError(f"{text}: a directory without __init__.py; name the .py file to check")
        path = os.path.join(path, "__init__.py")
    if not os.path.isfile(path):
        raise TargetError(f"{text}: no such file (looked in {os.getcwd()})")
    directory = os.path.dirname(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    parts = [] if stem == "__init__" else [stem]
    if parts and not stem.isidentifier():
        raise TargetError(f"{text}: {stem!r} is not a valid Python module name")
    # Regular packages: directories with an __init__.py, upwards.
    d = directory
    while os.path.isfile(os.path.join(d, "__init__.py")) and os.path.basename(d).isidentifier():
        parts.insert(0, os.path.basename(d))
        d = os.path.dirname(d)
    level, absolute = _imports(path)
    # Relative imports need that many packages above the module: namespace packages if need be.
    depth = len(parts) - 1 if stem != "__init__" else len(parts)
    while depth < level and os.path.basename(d).isidentifier() and os.path.dirname(d) != d:
        parts.insert(0, os.path.basename(d))
        d = os.path.dirname(d)
        depth += 1
    if depth < level:
        raise TargetError(f"{text}: its relative imports go {level} packages up, but only {depth} directories "
                          f"above it can be packages")
    sys_path = [d]
    root = os.path.join(d, parts[0]) if len(parts) > 1 or stem == "__init__" else directory
    # Absolute imports of an enclosing directory by name (``from cs231n.layers import *`` in cs231n/).
    ancestor = directory
    while os.path.dirname(ancestor) != ancestor:
        if os.path.basename(ancestor) in absolute:
            parent = os.path.dirname(ancestor)
            if parent not in sys_path:
                sys_path.append(parent)
            if len(ancestor) < len(root):
                root = ancestor
        ancestor = os.path.dirname(ancestor)
    if len(parts) == 1 and directory not in sys_path:
        sys_path.insert(0, directory)
    return Target(text, ".".join(parts), tuple(sys_path), root, file=path, attr=attr)


def resolve(text, want_class=False):
    """The ``Target`` for ``text`` (``path[:Class]`` or ``dotted.name[:Class]``); TargetError if it cannot be."""
    attr = None
    if want_class:
        text_only, attr = split_class(text)
    else:
        text_only = text
    if not text_only:
        raise TargetError("empty target")
    looks_like_path = (text_only.endswith(".py") or os.sep in text_only or (os.altsep or os.sep) in text_only
                       or os.path.exists(text_only))
    if looks_like_path:
        target = _from_file(text_only, attr)
        return Target(text, target.module, target.sys_path, target.root, target.file, attr)
    if not all(p.isidentifier() for p in text_only.split(".")):
        raise TargetError(f"{text_only}: neither an existing file nor a dotted module name")
    return Target(text, text_only, (os.getcwd(),), root="", attr=attr)
