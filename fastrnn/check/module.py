"""``fastrnn check --module TARGET``: every layer function a cs231n-style module defines, against the oracle.

For each function of the contract (``contract.FUNCTIONS``, in order: a forward before its
backward) the result is one of ``functions.STATUSES``:

* pass;
* wrong: which output, its largest error, at which sizes (or which notebook check);
* error: the exception, its message, and the file:line in the checked code; a crash of the
  whole interpreter (a segfault, ``os._exit``) is an error too, named as such;
* not implemented: the module does not define it, it raises NotImplementedError, or it still
  returns the assignment template's ``None``;
* untestable: a backward whose forward pass fails wherever it was tried;
* time-out: it did not finish within the time limit.

A module that defines none of the functions is a usage error (the wrong file, most likely).
Functions of an optional family (``contract.OPTIONAL_FAMILIES``) are checked only when the
module defines at least one of them.
"""

import time

from . import contract, functions
from .runner import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, Runner, locate
from .target import TargetError, resolve

__all__ = ["check_module", "summarize"]

# When a forward pass ended like this, its backward is not run (it would end the same way).
_CANNOT_RUN = ("not implemented", "time-out", "crashed")


def summarize(results):
    """Counts per status, in ``functions.STATUSES`` order, and whether everything passed."""
    counts = {s: 0 for s in functions.STATUSES}
    for r in results:
        counts[r["status"]] += 1
    return counts, bool(results) and counts["pass"] == len(results)


def check_module(text, only=None, timeout=DEFAULT_TIMEOUT, memory_mb=DEFAULT_MEMORY_MB, seed=0, progress=None):
    """Checks the module ``text`` (a file path or a dotted name); returns the report as a dict.

    ``only``: families or function names (``contract.select``). ``progress(result)`` is
    called after each function. Raises TargetError (a ``ValueError``) when the target cannot
    be checked at all, ValueError for an unknown ``only`` item.
    """
    target = resolve(text)
    entries = contract.select(only)
    every = contract.available()
    began = time.perf_counter()
    results = []
    with Runner(target, [e.name for e in every], timeout=timeout, memory_mb=memory_mb) as runner:
        info = runner.start()
        present = info["names"]  # name -> callable
        if not any(present.values()):
            raise TargetError(f"{target.display()} defines none of the layer functions (rnn_step_forward, rnn_forward, "
                              f"lstm_forward, ...): is it the right file?")
        families = {e.family for e in every if e.name in present}
        ended = {}  # function -> how its check ended, for its backward
        for entry in entries:
            started = time.perf_counter()
            if entry.name not in present:
                if entry.family in contract.OPTIONAL_FAMILIES and entry.family not in families:
                    continue  # an optional family the module does not have
                result = {"status": "not implemented", "message": "the module does not define it"}
            elif not present[entry.name]:
                result = {"status": "not implemented", "message": "the module's name is not a function"}
            elif entry.is_backward and ended.get(entry.forward) in _CANNOT_RUN:
                how = {"time-out": "timed out", "crashed": "crashed the process"}.get(ended[entry.forward],
                                                                                      ended[entry.forward])
                result = {"status": "untestable", "message": f"its forward pass {entry.forward} "
                                                             f"{'is ' if how == 'not implemented' else ''}{how}"}
            else:
                result = _check(runner, entry, seed)
            result.setdefault("location", None)
            result.setdefault("checks", [])
            result.setdefault("notes", [])
            ended[entry.name] = result.pop("ended", result["status"])
            result = {"function": entry.name, "family": entry.family, **result,
                      "seconds": round(time.perf_counter() - started, 3)}
            results.append(result)
            if progress is not None:
                progress(result)
        root = runner.root
    counts, ok = summarize(results)
    return {"kind": "module", "target": text, "module": info["name"], "file": info["file"], "root": root,
            "notes": info.get("notes", []), "seed": seed, "timeout": timeout, "memory_mb": memory_mb, "tolerance": functions.PARITY_TOLERANCE,
            "results": results, "counts": counts, "ok": ok, "seconds": round(time.perf_counter() - began, 3)}


def _check(runner, entry, seed):
    probes = functions.plan(entry, seed)
    outcome = runner.request("batch", {"probes": [(p.op, p.kwargs) for p in probes]})
    if outcome.kind == "ok":
        return functions.judge(entry, probes, outcome.value, lambda frames: locate(frames, runner.root))
    if outcome.kind == "time-out":
        return {"status": "time-out", "message": outcome.message, "location": outcome.location}
    # The worker died: a segfault, os._exit, the memory limit hit inside C code.
    return {"status": "error", "message": outcome.message, "location": outcome.location, "ended": "crashed",
            "output": outcome.output}
