"""Python 2 sources of the early assignments (2016-2017), made importable for ``fastrnn check``.

The assignment was Python 2 until 2017: its own ``temporal_softmax_loss`` ends with
``if verbose: print 'dx_flat: ', dx_flat.shape``, and student code of those years loops with
``xrange``. That is not a fault of the layers being checked, so the checker's import (in the
worker) passes every file of the checked code through this module (Python 3 code comes out
unchanged):

* ``translate`` rewrites print statements as calls (the only Python 2 statement of the
  assignment's code) and ``dict.iteritems()`` (in its ``CaptioningRNN``) as ``items()``,
  with the tokenizer, so nothing else of the file changes and line numbers stay the same;
* ``PY2_NAMES`` are the Python 2 builtins such code uses (``xrange`` and a few others); the
  worker defines them in a checked module that uses them without defining them.

Each change is reported as a note.
"""

import builtins
import dis
import functools
import io
import tokenize

__all__ = ["translate", "used_names", "PY2_NAMES"]

PY2_NAMES = {
    "xrange": range,
    "raw_input": input,
    "unicode": str,
    "basestring": str,
    "long": int,
    "unichr": chr,
    "reduce": functools.reduce,
}


def _is_statement_start(previous, depth):
    """Whether a token that follows ``previous`` (a significant token, or None) starts a statement."""
    if previous is None:
        return True
    kind, text = previous
    if kind in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
        return True
    return depth == 0 and kind == tokenize.OP and text in (":", ";")


_DICT_METHODS = {"iteritems": "items", "itervalues": "values", "iterkeys": "keys"}


def translate(source):
    """``source`` with its Python 2 statements and dict methods made Python 3: (new source, changes).

    ``print a, b`` -> ``print(a, b)``; ``print a,`` -> ``print(a, end=" ")``; ``print`` ->
    ``print()``; ``d.iteritems()`` -> ``d.items()`` (and ``itervalues``, ``iterkeys``).
    ``print >>f, x`` and anything the tokenizer rejects are left alone. ``changes`` describes
    what was rewritten (empty: the source is unchanged).
    """
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return source, []
    edits = []  # (row, col, text to insert, characters to remove)
    methods = 0
    depth = 0
    previous = None
    skip = (tokenize.NL, tokenize.COMMENT)
    for i, tok in enumerate(tokens):
        if tok.type in skip:
            continue
        if tok.type == tokenize.NAME and tok.string == "print" and _is_statement_start(previous, depth):
            nxt = next((t for t in tokens[i + 1:] if t.type not in skip), None)
            if nxt is not None and not (nxt.type == tokenize.OP and nxt.string in ("(", ">>", "=", ".", "[")):
                # The statement runs to the first NEWLINE, ';' or ':' outside brackets.
                inner, last, j = 0, tok, i + 1
                while j < len(tokens):
                    t = tokens[j]
                    if t.type == tokenize.OP and t.string in "([{":
                        inner += 1
                    elif t.type == tokenize.OP and t.string in ")]}":
                        inner -= 1
                    elif inner == 0 and (t.type in (tokenize.NEWLINE, tokenize.ENDMARKER)
                                         or (t.type == tokenize.OP and t.string == ";")):
                        break
                    if t.type not in skip:
                        last = t
                    j += 1
                if last is tok:  # a bare ``print``
                    edits.append((tok.end[0], tok.end[1], "()", 0))
                elif last.type == tokenize.OP and last.string == ",":
                    edits.append((last.start[0], last.start[1], ', end=" ")', 1))
                    edits.append((tok.end[0], tok.end[1], "(", _spaces(source, tok.end)))
                else:
                    edits.append((last.end[0], last.end[1], ")", 0))
                    edits.append((tok.end[0], tok.end[1], "(", _spaces(source, tok.end)))
        if (tok.type == tokenize.NAME and tok.string in _DICT_METHODS and previous == (tokenize.OP, ".")
                and i + 1 < len(tokens) and tokens[i + 1].string == "("):
            edits.append((tok.start[0], tok.start[1], _DICT_METHODS[tok.string], len(tok.string)))
            methods += 1
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        previous = (tok.type, tok.string)
    if not edits:
        return source, []
    lines = source.splitlines(keepends=True)
    for row, col, text, remove in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + text + line[col + remove:]
    prints = sum(1 for e in edits if e[2] in ("(", "()"))
    changes = ([f"{prints} print statement(s) as print() calls"] if prints else []) + \
        ([f"{methods} dict.iteritems()-style call(s) as items()/values()/keys()"] if methods else [])
    return "".join(lines), changes


def _spaces(source, position):
    """How many spaces follow ``position`` (row, col) on its line (``print 'x'`` -> one)."""
    line = source.splitlines(keepends=True)[position[0] - 1]
    rest = line[position[1]:]
    return len(rest) - len(rest.lstrip(" \t"))


def used_names(code):
    """The Python 2 builtins (``PY2_NAMES``) that ``code`` and its nested code objects look up as globals."""
    names = set()
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(i.argval for i in dis.get_instructions(c)
                     if i.opname in ("LOAD_GLOBAL", "LOAD_NAME") and i.argval in PY2_NAMES
                     and not hasattr(builtins, i.argval))
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    return sorted(names)
