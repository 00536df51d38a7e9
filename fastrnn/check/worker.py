"""The child process of ``fastrnn check --module/--model``: it imports the checked code and runs it.

Nothing here judges: the worker calls the checked functions on the inputs the parent sends
and sends back what they returned (arrays, or a description of anything else), which inputs
they modified, and any exception with its traceback frames. The parent (``runner``) decides
time-outs and crashes; ``functions`` and ``model`` compare with the oracle. So code under test
can neither hang, kill nor fool the checker.

The checked code's output (prints, warnings) goes to a file, not to the terminal; Python
tracebacks of a crash or of a time-out go to another (``faulthandler``), which the parent
reads to name the line.
"""

import faulthandler
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import pickle
import sys
import traceback
import warnings

import numpy as np

from ..gradcheck import eval_numerical_gradient, eval_numerical_gradient_array
from . import golden, legacy

__all__ = ["serve", "main", "Other", "BadReturn", "ForwardFailed"]


class Other:
    """Something returned that is not an array of numbers (kept as a description)."""

    def __init__(self, description):
        self.description = description

    def __repr__(self):
        return self.description


class BadReturn(Exception):
    """The checked function returned the wrong kind of thing (a verdict, not a crash of ours)."""

    def __init__(self, message, not_implemented=False):
        super().__init__(message)
        self.not_implemented = not_implemented


class ForwardFailed(Exception):
    """The forward pass a backward check needs failed (``info``: how); the forward's own check reports it."""

    def __init__(self, info):
        super().__init__(info.get("message", ""))
        self.info = info


class _Raised(Exception):
    """The checked code raised ``exc`` (wrapped so our own errors stay distinguishable)."""

    def __init__(self, exc):
        super().__init__(str(exc))
        self.exc = exc


def describe(obj):
    """A short description of a returned object, for messages."""
    if obj is None:
        return "None"
    if isinstance(obj, np.ndarray):
        return f"an array of shape {obj.shape} and dtype {obj.dtype}"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    if isinstance(obj, (int, float, np.number)):
        return f"the {type(obj).__name__} {obj!r}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}"


def portable(obj):
    """A copy of ``obj`` the parent can receive: an ndarray of numbers, None, or ``Other``."""
    if obj is None:
        return None
    if isinstance(obj, (np.ndarray, np.generic, int, float, list, tuple)) and not isinstance(obj, bool):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a = np.array(obj)
        except Exception:
            return Other(describe(obj))
        if a.dtype.kind in "biuf":
            return a
    return Other(describe(obj))


def _frames(tb):
    return [(f.filename, f.lineno, f.name) for f in traceback.extract_tb(tb)]


def _call(f, *args, **kwargs):
    """Calls checked code; any exception it raises (SystemExit included) becomes ``_Raised``."""
    try:
        return f(*args, **kwargs)
    except BaseException as exc:  # noqa: B036 - sys.exit and KeyboardInterrupt in checked code are findings
        raise _Raised(exc) from exc


def split(result, names, cache):
    """(outputs, cache, extra item count) from a result that should be ``(*names, cache)``.

    A single output without a cache (``sigmoid``, ``word_embedding_backward``) may come
    bare or as the first item of a tuple or list.
    """
    if result is None:
        raise BadReturn("returned None (is the function body still empty?)", not_implemented=True)
    n = len(names)
    if n == 1 and not cache:
        if isinstance(result, (tuple, list)) and result and isinstance(result[0], np.ndarray):
            return [result[0]], None, len(result) - 1  # (dW,) or [dW, ...]: the first item
        return [result], None, 0
    need = n + (1 if cache else 0)
    wanted = ", ".join(names + (("cache",) if cache else ()))
    if not isinstance(result, (tuple, list)):
        raise BadReturn(f"returned {describe(result)}, not a tuple ({wanted})")
    if len(result) < need:
        raise BadReturn(f"returned {describe(result)}, expected {need}: ({wanted})")
    outs = list(result[:n])
    if all(o is None for o in outs):
        raise BadReturn(f"returned None for {', '.join(names)} (still the assignment's template?)",
                        not_implemented=True)
    return outs, (result[n] if cache else None), len(result) - need


def _forward(f, args, outputs):
    """Runs a forward pass a backward check needs: (outputs, cache); ForwardFailed if it fails."""
    try:
        return split(_call(f, *args), tuple(outputs), True)[:2]
    except _Raised as exc:
        raise ForwardFailed({"kind": "raised", **_exception_info(exc)}) from None
    except BadReturn as exc:
        raise ForwardFailed({"kind": "bad-return", "message": str(exc)}) from None


def _copies(arrays):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in arrays]


def _modified(passed, originals, names):
    return [n for n, p, o in zip(names, passed, originals)
            if isinstance(o, np.ndarray) and not (isinstance(p, np.ndarray) and p.shape == o.shape
                                                  and np.array_equal(p, o, equal_nan=True))]


class Worker:
    """Runs requests against the imported ``module``."""

    def __init__(self, module):
        self.module = module

    def fn(self, name):
        return getattr(self.module, name)

    # ------------------------------------------------------------------ layer functions

    def call(self, fn, args, arg_names, outputs, cache):
        """One call: its outputs (portable), extra items, and which arguments it modified."""
        passed = _copies(args)
        result = _call(self.fn(fn), *passed)
        outs, _, extra = split(result, tuple(outputs), cache)
        return {"outputs": [portable(o) for o in outs], "extra": extra,
                "modified": _modified(passed, args, arg_names)}

    def forward_backward(self, fn, backward, args, arg_names, outputs, douts, grads):
        """Forward, then backward with ``douts`` and the forward's cache."""
        passed = _copies(args)
        outs, cache = _forward(self.fn(fn), passed, outputs)
        modified = _modified(passed, args, arg_names)
        dpassed = _copies(douts)
        result = _call(self.fn(backward), *dpassed, cache)
        try:
            g, _, gextra = split(result, tuple(grads), False)
        except BadReturn as exc:
            exc.args = (f"{backward} {exc.args[0]}",)
            raise
        return {"outputs": [portable(o) for o in outs], "modified": modified,
                "grads": [portable(x) for x in g], "grad_extra": gextra,
                "modified_upstream": _modified(dpassed, douts, ["d" + o for o in outputs])}

    def numgrad(self, fn, backward, args, arg_names, outputs, douts, grads, h):
        """The analytic gradients of ``backward`` and centred differences of ``fn``, as the notebook."""
        outs, cache = _forward(self.fn(fn), _copies(args), outputs)
        analytic, _, _ = split(_call(self.fn(backward), *_copies(douts), cache), tuple(grads), False)
        numeric = []
        forward = self.fn(fn)
        for name in grads:
            k = arg_names.index(name[1:])
            work = _copies(args)
            total = np.zeros(np.shape(work[k]), dtype=np.float64)
            for j, dout in enumerate(douts):
                def f(value, j=j, k=k):
                    work[k] = value
                    out = _forward(forward, work, outputs)[0][j]
                    if not isinstance(portable(out), np.ndarray):
                        raise ForwardFailed({"kind": "bad-return", "message": f"returned {describe(out)} for "
                                                                               f"{outputs[j]}"})
                    return out
                total += eval_numerical_gradient_array(f, work[k], dout, h=h)
            numeric.append(total)
        return {"analytic": [portable(a) for a in analytic], "numeric": numeric}

    def numgrad_loss(self, fn, args, outputs, wrt, h):
        """A loss's own gradient (its second output) and centred differences of the loss."""
        f = self.fn(fn)
        outs, _, _ = split(_call(f, *_copies(args)), tuple(outputs), False)
        work = _copies(args)

        def loss(value):
            work[wrt] = value
            out = split(_call(f, *work), tuple(outputs), False)[0][0]
            if not isinstance(portable(out), np.ndarray) or np.size(out) != 1:
                raise BadReturn(f"returned {describe(out)} for the loss")
            return float(np.asarray(out).reshape(()))

        numeric = eval_numerical_gradient(loss, work[wrt], verbose=False, h=h)
        return {"analytic": [portable(outs[1])], "numeric": [numeric]}

    def batch(self, probes):
        """Runs several requests ``[(op, kwargs), ...]``; one reply each, whatever happens to the others."""
        replies = []
        for op, kwargs in probes:
            try:
                replies.append(("ok", getattr(self, op)(**kwargs)))
            except _Raised as exc:
                replies.append(("raised", _exception_info(exc)))
            except BadReturn as exc:
                replies.append(("bad-return", {"message": str(exc), "not_implemented": exc.not_implemented}))
            except ForwardFailed as exc:
                replies.append(("forward-failed", exc.info))
            except MemoryError as exc:  # in our own copies, when the checked code left no room
                replies.append(("raised", _exception_info(exc)))
            except Exception:  # a bug of the checker's: reported for this probe, the others still run
                replies.append(("internal-error", {"message": traceback.format_exc()}))
        return replies

    # ------------------------------------------------------------------ CaptioningRNN

    def _model(self, cls, kwargs, seed=None):
        """``cls(word_to_idx, **rest)``, as the notebook calls it (after ``np.random.seed(seed)``)."""
        if seed is not None:
            np.random.seed(seed)
        rest = {k: v for k, v in kwargs.items() if k != "word_to_idx"}
        return _call(getattr(self.module, cls), kwargs["word_to_idx"], **rest)

    @staticmethod
    def _params(model):
        params = getattr(model, "params", None)
        if not isinstance(params, dict):
            raise BadReturn(f"the model has no dict 'params' (got {describe(params)})")
        return params

    def _loss(self, model, features, captions):
        result = _call(model.loss, features, captions)
        if result is None:
            raise BadReturn("loss returned None (not implemented?)", not_implemented=True)
        if not isinstance(result, (tuple, list)) or len(result) < 2:
            raise BadReturn(f"loss returned {describe(result)}, not (loss, grads)")
        loss, grads = result[0], result[1]
        if loss is None:
            raise BadReturn("loss returned None for the loss (not implemented?)", not_implemented=True)
        if not isinstance(grads, dict):
            raise BadReturn(f"loss returned {describe(grads)} for grads, not a dict")
        return portable(loss), {k: portable(v) for k, v in grads.items()}

    def model_loss(self, cls, kwargs, params, features, captions, seed=0):
        """Builds the model, sets ``params`` (name -> array, or "linspace" for the notebook's
        values of every parameter), returns its loss and gradients."""
        model = self._model(cls, kwargs, seed)
        own = self._params(model)
        shapes = {k: tuple(np.shape(v)) for k, v in own.items()}
        if params == "linspace":
            for k, v in own.items():
                own[k] = golden.ModelLoss.param_value(np.shape(v))
        else:
            for k, v in params.items():
                if k in own:
                    own[k] = v.copy()
        loss, grads = self._loss(model, features, captions)
        return {"loss": loss, "grads": grads, "shapes": shapes}

    def model_numgrad(self, cls, kwargs, seed, sizes, h):
        """The notebook's model gradient check: seed, captions, features, model, then each parameter."""
        np.random.seed(seed)
        V = len(kwargs["word_to_idx"])
        captions = np.random.randint(V, size=(sizes["N"], sizes["T"]))
        features = np.random.randn(sizes["N"], sizes["D"])
        model = self._model(cls, kwargs)
        params = self._params(model)
        _, grads = self._loss(model, features, captions)
        numeric = {}
        for name in sorted(params):
            def f(_):
                loss = self._loss(model, features, captions)[0]
                if not isinstance(loss, np.ndarray) or loss.size != 1:
                    raise BadReturn(f"loss returned {describe(loss)} for the loss")
                return float(loss.reshape(()))
            numeric[name] = eval_numerical_gradient(f, params[name], verbose=False, h=h)
        return {"analytic": grads, "numeric": numeric}


class _NumPy1Names(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``numpy.lib.<name>`` modules that NumPy 2 renamed ``numpy.lib._<name>_impl``.

    Assignment code written against NumPy 1 sometimes imports them (an editor's automatic
    import of ``asarray_chkfinite``, say). Last on ``sys.meta_path``, so it only answers what
    nothing else can import; each use is reported as a note.
    """

    def __init__(self):
        self.used = []

    def find_spec(self, fullname, path=None, target=None):
        prefix = "numpy.lib."
        if not fullname.startswith(prefix) or fullname.count(".") != 2:
            return None
        renamed = f"numpy.lib._{fullname[len(prefix):]}_impl"
        try:
            if importlib.util.find_spec(renamed) is None:
                return None
        except ImportError:
            return None
        self.used.append(f"imports {fullname}, which NumPy 2 renamed {renamed}: checked with that module")
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(f"numpy.lib._{spec.name.rsplit('.', 1)[1]}_impl")

    def exec_module(self, module):
        pass


def _under(path, root):
    try:
        return bool(root) and os.path.commonpath([os.path.abspath(path), root]) == root
    except ValueError:
        return False


class _CheckedCodeLoader(importlib.machinery.SourceFileLoader):
    """Loads a file of the checked code; Python 2 code (see ``legacy``) is translated, with a note."""

    notes = []

    def source_to_code(self, data, path, *, _optimize=-1):
        translated, changes = legacy.translate(importlib.util.decode_source(data))
        if changes:
            try:
                code = compile(translated, path, "exec", dont_inherit=True)
            except SyntaxError:
                changes = []  # not Python 2 we can help: the file's own error is reported
        if not changes:
            return super().source_to_code(data, path, _optimize=_optimize)
        self.notes.append(f"{os.path.basename(path)} is Python 2 code: {' and '.join(changes)} for this check")
        return code

    def exec_module(self, module):
        code = self.get_code(module.__name__)
        names = legacy.used_names(code)
        for name in names:
            module.__dict__.setdefault(name, legacy.PY2_NAMES[name])
        if names:
            self.notes.append(f"{os.path.basename(self.path)} uses the Python 2 builtin(s) {', '.join(names)}: "
                              f"defined for it as their Python 3 equivalents")
        exec(code, module.__dict__)


_CHECKER = os.path.dirname(os.path.abspath(__file__))


def _current_bytecode(path):
    """Whether the .pyc file ``path`` was written by this Python."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == importlib.util.MAGIC_NUMBER
    except OSError:
        return False


class _CheckedCodeFinder(importlib.abc.MetaPathFinder):
    """Finds modules as usual; those under ``root`` (the checked code) get ``_CheckedCodeLoader``."""

    def __init__(self, root):
        self.root = os.path.abspath(root)

    def find_spec(self, fullname, path=None, target=None):
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.has_location or not _under(spec.origin, self.root) \
                or _under(spec.origin, _CHECKER):
            return None
        origin = str(spec.origin)
        if origin.endswith(".py"):
            spec.loader = _CheckedCodeLoader(fullname, origin)
        elif origin.endswith(".pyc") and spec.submodule_search_locations is not None \
                and not _current_bytecode(origin):
            # A folder with a Python 2 ``__init__.pyc`` and no ``__init__.py``: Python 2 saw a
            # package there; Python 3 sees a namespace package.
            namespace = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            namespace.submodule_search_locations = list(spec.submodule_search_locations)
            return namespace
        return spec


def _import(spec):
    """Imports the target as ``spec`` says; returns the module."""
    for p in reversed(spec["sys_path"]):
        if p not in sys.path:
            sys.path.insert(0, p)
    sys.meta_path.insert(0, _CheckedCodeFinder(spec["root"] or os.getcwd()))
    name = spec["module"]
    if spec.get("file") and "." not in name and os.path.basename(spec["file"]) != "__init__.py":
        # A lone file: loaded from its path, under a private name if its own is taken (``types.py``).
        if name in sys.modules:
            name = f"_fastrnn_checked_{name}"
        loader_spec = importlib.util.spec_from_file_location(
            name, spec["file"], loader=_CheckedCodeLoader(name, spec["file"]))
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    return importlib.import_module(name)


def _exception_info(exc):
    """What the parent needs of an exception raised by the checked code."""
    if isinstance(exc, _Raised):
        exc = exc.exc
    frames = _frames(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        frames.append((exc.filename, exc.lineno or 0, "<module>"))
    message = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)
    if isinstance(exc, SystemExit):
        message = f"the checked code called sys.exit({exc.code!r})"
    return {"type": type(exc).__name__, "message": message, "frames": frames,
            "not_implemented": isinstance(exc, NotImplementedError)}


def _limit_memory(megabytes):
    """Caps the address space at what the process uses now plus ``megabytes`` (POSIX only)."""
    try:
        import resource
    except ImportError:  # Windows: no address-space limit
        return None
    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    limit = used + megabytes * 1024 * 1024
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        return None
    return limit


class _Channel:
    """Pickled messages over two file descriptors (the child's original stdin and stdout)."""

    def __init__(self, read_fd, write_fd):
        self._r = os.fdopen(read_fd, "rb")
        self._w = os.fdopen(write_fd, "wb")

    def recv(self):
        return pickle.load(self._r)

    def send(self, message):
        pickle.dump(message, self._w, protocol=pickle.HIGHEST_PROTOCOL)
        self._w.flush()


def serve():
    """The child's entry point (``python -c "from fastrnn.check.worker import serve; serve()"``).

    The parent talks over the child's stdin and stdout; those are moved to private
    descriptors first, and the checked code gets /dev/null as stdin and a file as stdout and
    stderr. The first message is the spec: what to import, the limits, the files.
    """
    conn = _Channel(os.dup(0), os.dup(1))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    spec = conn.recv()
    out = open(spec["output_path"], "ab", buffering=0)
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    sys.stdout = open(1, "w", closefd=False, buffering=1)
    sys.stderr = open(2, "w", closefd=False, buffering=1)
    main(conn, spec)


def main(conn, spec):
    """Imports the target, reports what it defines, then answers requests until told to stop."""
    sys.dont_write_bytecode = True  # checking leaves nothing in the checked code's folders
    trace = open(spec["trace_path"], "w+")
    faulthandler.enable(file=trace, all_threads=False)
    warnings.simplefilter("ignore")  # the checked code's warnings are not findings
    np.seterr(all="ignore")
    np.ones((8, 8)) @ np.ones((8, 8))  # start BLAS's threads before the limit is set
    _limit_memory(spec["memory_mb"])

    numpy1 = _NumPy1Names()
    sys.meta_path.append(numpy1)
    faulthandler.dump_traceback_later(spec["timeout"], exit=False, file=trace)
    try:
        module = _import(spec)
    except BaseException as exc:  # noqa: B036 - SystemExit at import time is a finding too
        faulthandler.cancel_dump_traceback_later()
        conn.send(("import-error", _exception_info(exc)))
        return
    faulthandler.cancel_dump_traceback_later()
    names = {n: callable(getattr(module, n, None)) for n in spec["names"] if hasattr(module, n)}
    conn.send(("ready", {"file": getattr(module, "__file__", None), "name": module.__name__, "names": names,
                         "notes": numpy1.used + _CheckedCodeLoader.notes}))

    worker = Worker(module)
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        op, kwargs, timeout = request
        trace.seek(0)
        trace.truncate()
        faulthandler.dump_traceback_later(timeout, exit=False, file=trace)
        try:
            reply = ("ok", getattr(worker, op)(**kwargs))
        except _Raised as exc:
            reply = ("raised", _exception_info(exc))
        except BadReturn as exc:
            reply = ("bad-return", {"message": str(exc), "not_implemented": exc.not_implemented})
        except MemoryError as exc:  # our own copies ran out of the memory the checked code left
            reply = ("raised", _exception_info(exc))
        finally:
            faulthandler.cancel_dump_traceback_later()
        np.seterr(all="ignore")  # the checked code may have changed these
        warnings.simplefilter("ignore")
        conn.send(reply)
