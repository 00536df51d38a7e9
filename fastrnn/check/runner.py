"""The isolated runner: the checked code runs in a child process, one request at a time, with limits.

Each request (the checks of one function) gets a time limit; the child's address space is
capped (``memory_mb`` above what it uses after start-up) so a memory hog gets a MemoryError
instead of taking the machine. When the child hangs, crashes (a segfault, ``os._exit``,
``os.abort``) or is killed, the runner says so for that request, with the file:line of the
checked code where it was (from ``faulthandler``), and starts a fresh child for the next one.

The child is a fresh interpreter (no threads or state inherited from the checker, and no
re-import of the caller's ``__main__`` as ``multiprocessing`` would do); it talks over its
stdin and stdout, and the checked code's own output goes to a file.
"""

import os
import pickle
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Optional

from .target import TargetError, short_path

__all__ = ["Outcome", "Runner", "locate", "DEFAULT_TIMEOUT", "DEFAULT_MEMORY_MB"]

DEFAULT_TIMEOUT = 20.0  # seconds per function: correct student code takes 1.3 s at most (lstm_backward)
_IMPORT_TIMEOUT = 60.0  # at least this for importing the target (it may import heavy libraries)
DEFAULT_MEMORY_MB = 2048  # address space the checked code may add to the worker's own
_START_TIMEOUT = 120.0  # a fresh interpreter importing numpy, on a busy machine
_GRACE = 0.5  # after the time limit, for faulthandler to write where the code was

_CHECK_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Outcome:
    """What happened to one request.

    ``kind``: "ok" (``value`` holds the reply), "raised" (the checked code raised; ``error``
    holds type, message, frames), "bad-return" (it returned the wrong kind of thing),
    "time-out", or "crashed" (the child died; ``message`` says how).
    """

    kind: str
    value: Optional[dict] = None
    error: Optional[dict] = None
    message: str = ""
    location: Optional[str] = None
    seconds: float = 0.0
    output: str = ""  # the end of what the checked code printed, for crashes


def _under(path, root):
    if not root or not path:
        return False
    try:
        return os.path.commonpath([os.path.abspath(path), os.path.abspath(root)]) == os.path.abspath(root)
    except ValueError:
        return False


def locate(frames, root):
    """``"file:line in function"`` of the innermost frame in the checked code (under ``root``).

    ``frames`` run outermost first. Frames of the checker itself never count; without a frame
    under ``root``, the innermost frame outside the checker is named.
    """
    ours = [f for f in frames if not _under(f[0], _CHECK_DIR)]
    inside = [f for f in ours if _under(f[0], root)] or ours
    if not inside:
        return None
    file, line, func = inside[-1]
    where = f"{short_path(file)}:{line}"
    return where if func in ("<module>", "?", None) else f"{where} in {func}"


_FRAME = re.compile(r'^\s*File "(.+)", line (\d+) in (\S+)')


def _trace_frames(text):
    """Frames of the last traceback ``faulthandler`` wrote (it writes the innermost first)."""
    blocks = re.split(r"\n(?=(?:Current thread|Thread) 0x)", text)
    for block in reversed(blocks):
        frames = [(m.group(1), int(m.group(2)), m.group(3)) for m in map(_FRAME.match, block.splitlines()) if m]
        if frames:
            return frames[::-1]
    return []


def _signal_name(code):
    try:
        sig = signal.Signals(-code)
    except ValueError:
        return f"signal {-code}"
    desc = signal.strsignal(sig) if hasattr(signal, "strsignal") else None
    return f"{sig.name} ({desc})" if desc else sig.name


class _Child:
    """A worker process and a thread that reads its replies into a queue."""

    def __init__(self, spec):
        package_parent = os.path.dirname(os.path.dirname(_CHECK_DIR))  # where ``fastrnn`` is importable from
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([package_parent] + [p for p in [env.get("PYTHONPATH")] if p])
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from fastrnn.check.worker import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.replies = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name="fastrnn-check-reader")
        self._reader.start()
        self.send(spec)

    def _read(self):
        stream = self.process.stdout
        while True:
            try:
                self.replies.put(pickle.load(stream))
            except Exception:  # EOF (the child ended) or a torn message (it died mid-write)
                self.replies.put(_EOF)
                return

    def send(self, message):
        pickle.dump(message, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()

    def get(self, timeout):
        """The next reply; ``_EOF`` if the child ended; ``_TIMEOUT`` after ``timeout`` seconds."""
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            return _TIMEOUT

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self):
        try:
            if self.process.poll() is None:
                self.send(None)
                self.process.wait(2)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    @property
    def exitcode(self):
        return self.process.poll()


_EOF = object()
_TIMEOUT = object()


class Runner:
    """A child process with the target imported, answering requests (see ``worker.Worker``).

    ``names``: the functions (or class) to look up in the module. Use as a context manager.
    """

    def __init__(self, target, names, timeout=DEFAULT_TIMEOUT, memory_mb=DEFAULT_MEMORY_MB):
        self.target = target
        self.names = list(names)
        self.timeout = float(timeout)
        self._import_timeout = max(self.timeout, _IMPORT_TIMEOUT)
        self.memory_mb = int(memory_mb)
        self.root = target.root
        self.info = None
        self._child = None
        fd, self._output_path = tempfile.mkstemp(prefix="fastrnn-check-", suffix=".out")
        os.close(fd)
        fd, self._trace_path = tempfile.mkstemp(prefix="fastrnn-check-", suffix=".trace")
        os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _spec(self):
        t = self.target
        return {"module": t.module, "sys_path": list(t.sys_path), "file": t.file, "root": t.root, "names": self.names,
                "timeout": self._import_timeout, "memory_mb": self.memory_mb, "output_path": self._output_path,
                "trace_path": self._trace_path}

    def _stop(self):
        if self._child is not None:
            self._child.close()
            self._child = None

    def close(self):
        self._stop()
        for path in (self._output_path, self._trace_path):
            try:
                os.unlink(path)
            except OSError:
                pass

    def _read(self, path, tail=2000):
        try:
            with open(path, "r", encoding="utf-8", errors="replace") as f:
                return f.read()[-tail:]
        except OSError:
            return ""

    def _death(self):
        """How the child died: a message, and where the checked code was."""
        try:
            self._child.process.wait(5)
        except subprocess.TimeoutExpired:
            self._child.kill()
        code = self._child.exitcode
        location = locate(_trace_frames(self._read(self._trace_path, 20000)), self.root)
        if code is None:
            message = "the process stopped answering"
        elif code < 0:
            message = f"the process crashed: killed by {_signal_name(code)}"
        else:
            message = f"the process exited with status {code} (os._exit, or a crash in C code)"
        return message, location

    def start(self):
        """Starts a child and imports the target; returns what it found. TargetError if it cannot."""
        self._stop()
        with open(self._output_path, "w"):
            pass
        self._child = _Child(self._spec())
        what = f"cannot import {self.target.display()}"
        reply = self._child.get(_START_TIMEOUT + self._import_timeout + _GRACE)
        if reply is _TIMEOUT:
            self._child.kill()
            location = locate(_trace_frames(self._read(self._trace_path, 20000)), self.root)
            self._stop()
            raise TargetError(f"{what}: the import did not finish within {self._import_timeout:g} s"
                              + (f" ({location})" if location else ""))
        if reply is _EOF:
            message, location = self._death()
            self._stop()
            raise TargetError(f"{what}: {message}" + (f" ({location})" if location else ""))
        kind, info = reply
        if kind == "import-error":
            self._stop()
            location = locate(info["frames"], self.root)
            raise TargetError(f"{what}: {info['type']}: {info['message']}" + (f" ({location})" if location else ""))
        self.info = info
        if not self.root and info.get("file"):
            self.root = _package_root(info["file"], info["name"])
        return info

    def request(self, op, kwargs, timeout=None):
        """Runs ``worker.Worker.<op>(**kwargs)`` in the child; an ``Outcome``."""
        timeout = self.timeout if timeout is None else float(timeout)
        if self._child is None or self._child.exitcode is not None:
            self.start()
        began = time.perf_counter()
        try:
            self._child.send((op, kwargs, timeout))
        except (OSError, ValueError):
            pass  # the child is gone: get() says so
        reply = self._child.get(timeout + _GRACE)
        seconds = time.perf_counter() - began
        if reply is _TIMEOUT:
            self._child.kill()
            location = locate(_trace_frames(self._read(self._trace_path, 20000)), self.root)
            self._stop()
            return Outcome("time-out", message=f"did not finish within {timeout:g} s", location=location,
                           seconds=seconds)
        if reply is _EOF:
            message, location = self._death()
            output = self._read(self._output_path)
            self._stop()
            return Outcome("crashed", message=message, location=location, seconds=seconds, output=output)
        kind, payload = reply
        if kind == "ok":
            return Outcome("ok", value=payload, seconds=seconds)
        if kind == "raised":
            return Outcome("raised", error=payload, location=locate(payload["frames"], self.root), seconds=seconds)
        return Outcome("bad-return", error=payload, message=payload["message"], seconds=seconds)


def _package_root(file, name):
    """The directory of the top-level package of module ``name`` loaded from ``file``
    (the module's own directory for a top-level module)."""
    root = os.path.dirname(os.path.abspath(file))
    levels = name.count(".") - (0 if os.path.basename(file) == "__init__.py" else 1)
    for _ in range(max(levels, 0)):
        root = os.path.dirname(root)
    return root
