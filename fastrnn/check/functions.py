"""The checks of one layer function of a cs231n-style module: what to run, and the verdict.

For a forward function (and ``sigmoid``, ``temporal_softmax_loss``):

* the notebook's values, where the notebook has them (``golden``);
* parity with the oracle (``fastrnn.reference``) on random inputs at every size of
  ``contract.PARITY_SIZES`` (N, T, D, H = 1 included), float64;
* that it does not modify its inputs.

For a backward function:

* the notebook's numerical gradient check (its inputs, its tolerances);
* parity of every gradient with the oracle's, at the same sizes, from the function's own
  forward pass (its cache is only ever handed back). A size where that forward pass fails or
  differs from the oracle is skipped (the forward's own check reports it); when that leaves
  nothing, the backward is "untestable".

The inputs and the oracle's answers are made here, in the checker's process; the checked
code runs in the worker (``runner``), which only reports what it returned.

Parity tolerance (``fastrnn._tolerances.FOREIGN``): other people's float64 code computes
the same mathematics in another order (tanh from exponentials, sigmoid three ways, the
recurrent sums per gate or concatenated, gradients from cached or recomputed activations),
so it agrees with the oracle to rounding, not bit for bit. The error of an output is its
largest difference from the oracle's relative to max(1, the oracle's largest magnitude):
inputs are of order 1, so rounding errors are of order eps times 1 even where the result
is small (cancellation in ``p - 1`` of a softmax, a sigmoid of -40), and an elementwise
relative error would call those wrong. See ``_tolerances.FOREIGN`` for the measurements.
"""

from dataclasses import dataclass, field
from typing import List

import numpy as np

from .. import _tolerances
from ..gradcheck import rel_error
from . import golden
from .contract import PARITY_SIZES, by_name, draw, oracle
from .worker import Other

__all__ = ["PARITY_TOLERANCE", "STATUSES", "plan", "judge", "error_of"]

PARITY_TOLERANCE = _tolerances.FOREIGN["tolerance"]

STATUSES = ("pass", "wrong", "error", "not implemented", "untestable", "time-out")

# A gradient check for a function the notebooks do not check (GRU): scaled inputs (unscaled
# ones saturate the gates), and the error relative to the gradient's largest entry (``normwise``),
# which the oracle's backward passes keep below 2.5e-10 on such inputs (measured over five seeds
# for every cs231n backward; the elementwise rel_error reaches 1e-7 on near-zero entries).
_DEFAULT_GRADIENT_CHECK = dict(sizes=dict(N=3, T=4, D=5, H=6, V=7, M=4, A=2, B=3), threshold=1e-6, h=1e-5)

_SYMBOLS = "NTDHVMAB"


@dataclass
class Probe:
    """One call (or gradient check) of the checked code, and what to compare its reply with."""

    kind: str  # "values" (the notebook's), "sanity", "gradient check", "parity"
    label: str  # where: "the notebook's inputs", "N=2, T=3, D=4, H=5"
    op: str  # the worker's method
    kwargs: dict
    expected: dict = field(default_factory=dict)


def _symbols(entry):
    args = by_name(entry.forward).args if entry.is_backward else entry.args
    used = set()
    for a in args:
        for e in a.shape.split(","):
            used.update(t.strip() for t in e.split("*") if t.strip() and not t.strip().isdigit())
        if a.kind == "index":
            used.add(a.bound)
    return [s for s in _SYMBOLS if s in used]


def _where(entry, sizes):
    return ", ".join(f"{s}={sizes[s]}" for s in _symbols(entry))


def _oracle_forward(entry, args):
    """The oracle's outputs (a list) and cache (or None) for forward ``entry``."""
    result = oracle(entry.name)(*args)
    if entry.cache:
        return list(result[:-1]), result[-1]
    if len(entry.outputs) == 1:
        return [result], None
    return list(result), None


def _call_kwargs(entry, args):
    return dict(fn=entry.name, args=args, arg_names=[a.name for a in entry.args], outputs=list(entry.outputs),
                cache=entry.cache)


def _forward_plan(entry, seed):
    probes = []
    for g in golden.FORWARD_VALUES:
        if g.function == entry.name:
            probes.append(Probe("values", "the notebook's inputs", "call", _call_kwargs(entry, list(g.inputs())),
                                {"values": g.expected, "threshold": g.threshold}))
    if entry.loss_grad_of:
        for k, (N, T, V, p, loss) in enumerate(golden.SOFTMAX_SANITY):
            rs = golden.notebook_draws()
            args = [0.001 * rs.randn(N, T, V), rs.randint(V, size=(N, T)), rs.rand(N, T) <= p]
            expected = loss * (args[2].sum() / (N * T)) / p
            probes.append(Probe("sanity", f"the notebook's sanity check {k + 1} (N={N}, T={T}, V={V}, p={p})", "call",
                                _call_kwargs(entry, args), {"loss": expected, "rtol": golden.SOFTMAX_SANITY_RTOL}))
        check = golden.GRADIENT_CHECKS.get(entry.name)
        rs = golden.notebook_draws()
        args = [draw(a, check.sizes, rs, notebook=True) for a in entry.args]
        wrt = [a.name for a in entry.args].index(entry.loss_grad_of)
        probes.append(Probe("gradient check", f"the notebook's inputs ({_where(entry, check.sizes)})", "numgrad_loss",
                            dict(fn=entry.name, args=args, outputs=list(entry.outputs), wrt=wrt, h=check.h),
                            {"thresholds": check.thresholds, "notebook": True}))
    for i, sizes in enumerate(PARITY_SIZES):
        rs = np.random.RandomState([seed, i])
        args = [draw(a, sizes, rs) for a in entry.args]
        outs, _ = _oracle_forward(entry, args)
        probes.append(Probe("parity", _where(entry, sizes), "call", _call_kwargs(entry, args), {"outputs": outs}))
    return probes


def _backward_plan(entry, seed):
    fwd = by_name(entry.forward)
    arg_names = [a.name for a in fwd.args]
    probes = []
    check = golden.GRADIENT_CHECKS.get(entry.name)
    if check is not None:
        rs = golden.notebook_draws()
        args = [draw(a, check.sizes, rs, notebook=True) for a in fwd.args]
        sizes, thresholds, h = check.sizes, check.thresholds, check.h
        label = f"the notebook's inputs ({_where(entry, check.sizes)})"
    else:
        d = _DEFAULT_GRADIENT_CHECK
        rs = golden.notebook_draws()
        args = [draw(a, d["sizes"], rs) for a in fwd.args]
        sizes, h, label = d["sizes"], d["h"], _where(entry, d["sizes"])
        thresholds = dict.fromkeys(entry.grad_names, d["threshold"])
    outs, _ = _oracle_forward(fwd, args)
    douts = [rs.randn(*np.shape(o)) for o in outs]
    probes.append(Probe("gradient check", label, "numgrad",
                        dict(fn=fwd.name, backward=entry.name, args=args, arg_names=arg_names,
                             outputs=list(fwd.outputs), douts=douts, grads=list(entry.grad_names), h=h),
                        {"thresholds": thresholds, "notebook": check is not None}))
    for i, sizes in enumerate(PARITY_SIZES):
        rs = np.random.RandomState([seed, i])
        args = [draw(a, sizes, rs) for a in fwd.args]
        outs, cache = _oracle_forward(fwd, args)
        douts = [rs.randn(*np.shape(o)) for o in outs]
        grads = oracle(entry.name)(*douts, cache)
        grads = list(grads) if isinstance(grads, tuple) else [grads]
        probes.append(Probe("parity", _where(entry, sizes), "forward_backward",
                            dict(fn=fwd.name, backward=entry.name, args=args, arg_names=arg_names,
                                 outputs=list(fwd.outputs), douts=douts, grads=list(entry.grad_names)),
                            {"outputs": outs, "grads": grads}))
    return probes


def plan(entry, seed=0):
    """The probes of ``entry``'s check (inputs drawn from ``seed``, the notebook's from 231)."""
    return _backward_plan(entry, seed) if entry.is_backward else _forward_plan(entry, seed)


# --------------------------------------------------------------------------- verdicts


def error_of(got, expected):
    """(error, problem, note) of one output: the largest |got - expected| / max(1, max|expected|).

    ``problem`` says what is wrong when the output cannot be compared (None, not an array,
    another shape, NaN where the oracle is finite); ``note`` records a harmless difference
    (an array of the same values with an extra axis of length 1, such as (1, H) for (H,)).
    """
    expected = np.asarray(expected, dtype=np.float64)
    if got is None:
        return None, "is None", None
    if isinstance(got, Other):
        return None, f"is {got.description}, not an array", None
    got = np.asarray(got)
    note = None
    if got.shape != expected.shape:
        if got.size == expected.size and np.squeeze(got).shape == np.squeeze(expected).shape:
            note = f"has shape {got.shape}, the contract's is {expected.shape} (values compared as they are)"
            got = got.reshape(expected.shape)
        else:
            return None, f"has shape {got.shape}, expected {expected.shape}", None
    got = got.astype(np.float64)
    finite = np.isfinite(expected)
    if not np.array_equal(np.isnan(got), np.isnan(expected)) or not np.all(np.isfinite(got[finite])):
        return None, "has NaN or inf where the oracle's values are finite", note
    if not finite.all() and not np.array_equal(got[~finite], expected[~finite], equal_nan=True):
        return None, "differs from the oracle's non-finite values", note
    if expected.size == 0:
        return 0.0, None, note
    scale = max(1.0, float(np.max(np.abs(expected[finite])))) if finite.any() else 1.0
    diff = np.abs(got[finite] - expected[finite])
    return (float(diff.max()) / scale if diff.size else 0.0), None, note


def _rel_error(got, expected):
    """The notebook's rel_error, or a problem (None, shape, ...) as in ``error_of``."""
    err, problem, note = error_of(got, expected)
    if problem is not None:
        return None, problem, note
    got = np.asarray(got, dtype=np.float64).reshape(np.shape(expected))
    return rel_error(expected, got), None, note


def normwise(analytic, numeric):
    """(max |analytic - numeric| / max(|analytic|, |numeric|) over the array, problem, note)."""
    err, problem, note = error_of(analytic, numeric)
    if problem is not None:
        return None, problem, note
    a = np.asarray(analytic, dtype=np.float64).reshape(np.shape(numeric))
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)))
    return (float(np.max(np.abs(a - numeric), initial=0.0)) / scale if scale > 0 else 0.0), None, note


@dataclass
class Verdict:
    """The findings of one function's check."""

    failures: List[dict] = field(default_factory=list)  # {"status", "message", "location"}
    checks: List[dict] = field(default_factory=list)  # {"check", "where", "ok", "detail"}
    notes: List[str] = field(default_factory=list)
    skipped: int = 0  # backward sizes skipped because the forward failed there
    forward_problems: List[str] = field(default_factory=list)
    parity_cases: int = 0
    worst: float = 0.0  # the largest parity error of the passing comparisons

    def fail(self, status, message, location=None, kind=None):
        self.failures.append({"status": status, "message": message, "location": location, "kind": kind})

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def record(self, probe, ok, detail, error=None, tolerance=None):
        """One check's outcome; ``error`` is its largest error (None where there is no number)."""
        self.checks.append({"check": probe.kind, "where": probe.label, "ok": ok, "detail": detail,
                            "error": error, "tolerance": tolerance})


def _at(probe):
    return f"in {probe.label}" if probe.kind == "sanity" else f"at {probe.label}"


def _compare_outputs(v, probe, names, got, expected):
    """Compares outputs with the oracle's; (all agree, the largest error or None)."""
    ok, worst = True, 0.0
    for name, g, e in zip(names, got, expected):
        err, problem, note = error_of(g, e)
        if note:
            v.note(f"{name} {note}")
        if problem is not None:
            v.fail("wrong", f"{name} {problem} {_at(probe)}")
            ok, worst = False, None
            continue
        if worst is not None:
            worst = max(worst, err)
        if err > PARITY_TOLERANCE:
            v.fail("wrong", f"{name} differs from the oracle's by {err:.2g} (max error relative to max(1, |oracle|); "
                            f"tolerance {PARITY_TOLERANCE:g}) {_at(probe)}")
            ok = False
        else:
            v.worst = max(v.worst, err)
    return ok, worst


def _judge_call(v, entry, probe, value):
    if value.get("extra"):
        v.note(f"returns {value['extra']} more item(s) than ({', '.join(entry.outputs)}"
               f"{', cache' if entry.cache else ''}); they are ignored")
    if value.get("modified"):
        v.fail("wrong", f"modifies its input {', '.join(value['modified'])} {_at(probe)}")
    got = value["outputs"]
    if probe.kind == "values":
        ok, worst = True, 0.0
        threshold = probe.expected["threshold"]
        for k, name in enumerate(entry.outputs):
            if name not in probe.expected["values"]:
                continue
            err, problem, note = _rel_error(got[k], probe.expected["values"][name])
            if problem is not None:
                v.fail("wrong", f"{name} {problem} at the notebook's inputs")
                ok, worst = False, None
                continue
            if worst is not None:
                worst = max(worst, err)
            if not err < threshold:
                v.fail("wrong", f"{name} differs from the notebook's values: rel_error {err:.2g}, the notebook asks "
                                f"for less than {threshold:g}")
                ok = False
        v.record(probe, ok, "the notebook's expected values (rel_error)", worst, threshold)
    elif probe.kind == "sanity":
        err, problem, _ = error_of(got[0], np.float64(probe.expected["loss"]))
        loss = probe.expected["loss"]
        if problem is not None:
            v.fail("wrong", f"loss {problem} {_at(probe)}")
            v.record(probe, False, problem)
        else:
            value_ = float(np.asarray(got[0], dtype=np.float64).reshape(()))
            ok = abs(value_ - loss) <= probe.expected["rtol"] * abs(loss)
            if not ok:
                v.fail("wrong", f"loss is {value_:.4g}, the notebook expects about {loss:.4g} {_at(probe)}")
            v.record(probe, ok, f"loss {value_:.4g}, about {loss:.4g} expected")
    else:
        v.parity_cases += 1
        ok, worst = _compare_outputs(v, probe, entry.outputs, got, probe.expected["outputs"])
        v.record(probe, ok and not value.get("modified"), "outputs against the oracle", worst, PARITY_TOLERANCE)


def _judge_gradients(v, probe, names, analytic, numeric):
    ok, worst = True, 0.0  # worst: the largest error as a fraction of its threshold
    thresholds = probe.expected["thresholds"]
    # The notebook's own checks use its elementwise rel_error (and its thresholds); others the
    # error relative to the gradient's largest entry, which near-zero entries cannot inflate.
    measure = _rel_error if probe.expected["notebook"] else normwise
    for name, a, n in zip(names, analytic, numeric):
        err, problem, note = measure(a, n)
        if note:
            v.note(f"{name} {note}")
        if problem is not None:
            v.fail("wrong", f"{name} {problem} {_at(probe)}")
            ok, worst = False, None
            continue
        if worst is not None:
            worst = max(worst, err / thresholds[name])
        if not err < thresholds[name]:
            asks = "the notebook asks for less than" if probe.expected["notebook"] else "threshold"
            what = "rel_error" if probe.expected["notebook"] else "error relative to its largest entry"
            v.fail("wrong", f"{name} disagrees with the numerical gradient of the forward pass: {what} {err:.2g} "
                            f"({asks} {thresholds[name]:g}) {_at(probe)}", kind="gradient check")
            ok = False
    v.record(probe, ok, "analytic against numerical gradients (error as a fraction of the threshold)", worst, 1.0)


def _judge_backward(v, entry, probe, value):
    fwd = by_name(entry.forward)
    if value.get("modified_upstream"):
        v.note(f"modifies its upstream gradient {', '.join(value['modified_upstream'])} in place (harmless in "
               f"cs231n's code, which never reuses it)")
    if value.get("grad_extra"):
        v.note(f"returns {value['grad_extra']} more item(s) than ({', '.join(entry.grad_names)}); they are ignored")
    # The forward must agree with the oracle here, or this size says nothing about the backward.
    for name, g, e in zip(fwd.outputs, value["outputs"], probe.expected["outputs"]):
        err, problem, _ = error_of(g, e)
        if problem is not None or err > PARITY_TOLERANCE:
            v.skipped += 1
            v.forward_problems.append(f"{fwd.name}'s {name} {problem or 'differs from the oracle'} {_at(probe)}")
            return
    v.parity_cases += 1
    ok, worst = _compare_outputs(v, probe, entry.grad_names, value["grads"], probe.expected["grads"])
    v.record(probe, ok, "gradients against the oracle", worst, PARITY_TOLERANCE)


def judge(entry, probes, replies, locate_frames):
    """The result of ``entry``'s check from the worker's replies (one per probe).

    ``locate_frames(frames)`` names the line of the checked code in a traceback.
    Returns {"status", "message", "location", "checks", "notes"}.
    """
    v = Verdict()
    for probe, (kind, value) in zip(probes, replies):
        if kind == "ok":
            if probe.op == "call":
                _judge_call(v, entry, probe, value)
            elif probe.op == "forward_backward":
                _judge_backward(v, entry, probe, value)
            else:
                names = entry.grad_names if entry.is_backward else ("dx",)
                _judge_gradients(v, probe, names, value["analytic"], value["numeric"])
        elif kind == "forward-failed":
            v.skipped += 1
            how = (f"raises {value['type']}: {value['message']}" if value["kind"] == "raised" else value["message"])
            v.forward_problems.append(f"{entry.forward} {how} {_at(probe)}")
            v.record(probe, None, "skipped: the forward pass failed")
        elif kind == "raised":
            location = locate_frames(value["frames"])
            if value["not_implemented"]:
                v.fail("not implemented", f"raises NotImplementedError{': ' + value['message'] if value['message'] else ''}",
                       location)
            else:
                hint = " (the checked code's memory is capped: --memory-limit)" if value["type"] == "MemoryError" else ""
                v.fail("error", f"{value['type']}: {value['message']} {_at(probe)}{hint}", location)
            v.record(probe, False, f"raised {value['type']}")
        elif kind == "internal-error":
            v.fail("error", f"the checker itself failed here (please report it): {value['message'].strip()}")
            v.record(probe, False, "the checker failed")
        else:  # bad-return
            if value["not_implemented"]:
                v.fail("not implemented", value["message"])
            else:
                v.fail("wrong", f"{value['message']} {_at(probe)}")
            v.record(probe, False, value["message"])
    return _summarize(entry, v, len([p for p in probes if p.kind == "parity"]))


def headline(failures):
    """The failure that names the function's status: not implemented, then errors, then wrong
    results (a parity or notebook-value finding before a gradient check's)."""
    for status in ("not implemented", "error", "wrong"):
        first = [f for f in failures if f["status"] == status]
        if first:
            break
    first.sort(key=lambda f: f.get("kind") == "gradient check")
    return status, first


def _summarize(entry, v, n_parity):
    result = {"checks": v.checks, "notes": v.notes, "location": None,
              "findings": [f["message"] + (f" ({f['location']})" if f["location"] else "") for f in v.failures]}
    if v.failures:
        status, first = headline(v.failures)
        more = len(v.failures) - 1
        message = first[0]["message"] + (f" (and {more} more finding{'s' if more > 1 else ''})" if more else "")
        result.update(status=status, message=message, location=first[0]["location"])
        return result
    if entry.is_backward and v.parity_cases == 0:
        reason = v.forward_problems[0] if v.forward_problems else "no size could be checked"
        result.update(status="untestable", message=f"its forward pass fails: {reason}")
        return result
    parts = [f"{len([c for c in v.checks if c['ok']])} checks"]
    if any(c["check"] == "values" for c in v.checks):
        parts.append("the notebook's values")
    if any(c["check"] == "gradient check" for c in v.checks):
        parts.append("the numerical gradient check")
    parts.append(f"parity at {v.parity_cases} of {n_parity} sizes (worst {v.worst:.1g})")
    if v.skipped:
        parts.append(f"{v.skipped} size(s) skipped where its forward pass fails")
    result.update(status="pass", message=", ".join(parts))
    return result
