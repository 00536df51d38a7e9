"""``fastrnn check --model TARGET:ClassName``: a cs231n ``CaptioningRNN`` class against the notebooks.

For each cell type (rnn, lstm), one result, from three checks:

* the notebook's loss: every parameter set to ``np.linspace(-1.4, 1.3)``, the notebook's
  features and captions, the expected loss to 1e-10 (``golden.MODEL_LOSSES``);
* the notebook's numerical gradient check of every parameter (``golden.MODEL_GRADIENT_CHECK``),
  measured by the error relative to the gradient's largest entry: the notebook's elementwise
  rel_error reaches 1.6e-3 for correct LSTM models on entries near zero, depending on how the
  class draws its initial weights (eight initializations measured), where this error stays
  below 1.6e-7;
* parity of the loss and of every gradient with ``fastrnn.CaptioningRNN`` on the oracle
  backend, with the same random parameters, on captions that end in ``<NULL>`` padding.

The class is built as the notebooks build it: ``Class(word_to_idx, input_dim=..., wordvec_dim=...,
hidden_dim=..., cell_type=..., dtype=np.float64)``.
"""

import time

import numpy as np

from .. import _backend
from ..models import CaptioningRNN
from . import golden
from .functions import PARITY_TOLERANCE, Probe, Verdict, error_of, headline, normwise
from .module import summarize
from .runner import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, Runner, locate
from .target import TargetError, resolve

__all__ = ["check_model", "CELLS"]

CELLS = ("rnn", "lstm")

# The parity check's model: every size distinct, a vocabulary with the special words.
_PARITY = dict(N=3, T=5, D=7, W=4, H=6)
_WORDS = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "cat": 4, "sat": 5}


def _kwargs(word_to_idx, s, cell_type):
    return dict(word_to_idx=word_to_idx, input_dim=s["D"], wordvec_dim=s["W"], hidden_dim=s["H"],
                cell_type=cell_type, dtype=np.float64)


def _plan(cls, cell_type, seed):
    probes = []
    g = golden.MODEL_LOSSES[cell_type]
    probes.append(Probe("values", "the notebook's inputs", "model_loss",
                        dict(cls=cls, kwargs=_kwargs(g.word_to_idx, g.sizes, cell_type), params="linspace",
                             features=g.features(), captions=g.captions()),
                        {"loss": g.expected_loss, "tolerance": g.tolerance}))
    gc = golden.MODEL_GRADIENT_CHECK
    probes.append(Probe("gradient check", "the notebook's inputs", "model_numgrad",
                        dict(cls=cls, kwargs=_kwargs(gc["word_to_idx"], gc["sizes"], cell_type), seed=231,
                             sizes=gc["sizes"], h=gc["h"]),
                        {"threshold": gc["threshold"]}))
    # Parity: fastrnn's model on the oracle, with random parameters.
    s = _PARITY
    rs = np.random.RandomState([seed, 1 + CELLS.index(cell_type)])
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        ours = CaptioningRNN(_WORDS, input_dim=s["D"], wordvec_dim=s["W"], hidden_dim=s["H"], cell_type=cell_type,
                             dtype=np.float64)
    finally:
        np.random.set_state(state)
    params = {k: rs.randn(*v.shape) * (0.5 if v.ndim == 1 else 1 / np.sqrt(v.shape[0]))
              for k, v in ours.params.items()}
    ours.params.update({k: v.copy() for k, v in params.items()})
    features = rs.randn(s["N"], s["D"])
    captions = rs.randint(3, len(_WORDS), size=(s["N"], s["T"] + 1))
    captions[:, 0] = _WORDS["<START>"]
    for n in range(s["N"]):  # captions of different lengths: <END>, then <NULL> padding
        end = 2 + n
        captions[n, end] = _WORDS["<END>"]
        captions[n, end + 1:] = _WORDS["<NULL>"]
    with _backend.use_backend("numpy"):
        loss, grads = ours.loss(features, captions)
    probes.append(Probe("parity", f"N={s['N']}, T={s['T']}, D={s['D']}, W={s['W']}, H={s['H']}, V={len(_WORDS)}",
                        "model_loss", dict(cls=cls, kwargs=_kwargs(_WORDS, s, cell_type), params=params,
                                           features=features, captions=captions),
                        {"loss": loss, "grads": grads, "shapes": {k: v.shape for k, v in params.items()}}))
    return probes


def _is_zero(loss):
    return isinstance(loss, np.ndarray) and loss.size == 1 and float(loss.reshape(())) == 0.0


def _loss_value(v, loss, where):
    err, problem, _ = error_of(loss, np.float64(0.0))
    if problem is not None:
        v.fail("wrong", f"the loss {problem} {where}")
        return None
    return float(np.asarray(loss, dtype=np.float64).reshape(()))


def _judge(probes, replies, locate_frames):
    v = Verdict()
    for probe, (kind, value) in zip(probes, replies):
        where = "at the notebook's inputs" if probe.label.startswith("the notebook") else f"at {probe.label}"
        if kind == "raised":
            status = "not implemented" if value["not_implemented"] else "error"
            v.fail(status, f"{value['type']}: {value['message']} {where}", locate_frames(value["frames"]))
            v.record(probe, False, f"raised {value['type']}")
            continue
        if kind == "internal-error":
            v.fail("error", f"the checker itself failed here (please report it): {value['message'].strip()}")
            v.record(probe, False, "the checker failed")
            continue
        if kind != "ok":
            v.fail("not implemented" if value["not_implemented"] else "wrong", f"{value['message']} {where}")
            v.record(probe, False, value["message"])
            continue
        if "grads" in value and not value["grads"] and _is_zero(value["loss"]):
            v.fail("not implemented", "loss returns 0 and no gradients (still the assignment's template?)")
            v.record(probe, False, "not implemented")
            continue
        if probe.kind == "values":
            loss = _loss_value(v, value["loss"], where)
            if loss is None:
                continue
            expected, tol = probe.expected["loss"], probe.expected["tolerance"]
            ok = abs(loss - expected) < tol
            if not ok:
                v.fail("wrong", f"the loss is {loss:.11g}, the notebook expects {expected:.11g} (difference "
                                f"{abs(loss - expected):.2g}; it asks for less than {tol:g})")
            v.record(probe, ok, "the notebook's loss", abs(loss - expected), tol)
        elif probe.kind == "gradient check":
            ok, worst = True, 0.0
            threshold = probe.expected["threshold"]
            for name, numeric in value["numeric"].items():
                if name not in value["analytic"]:
                    v.fail("wrong", f"grads has no {name!r} {where}")
                    ok = False
                    continue
                err, problem, note = normwise(value["analytic"][name], numeric)
                if note:
                    v.note(f"grads[{name!r}] {note}")
                if problem is not None:
                    v.fail("wrong", f"grads[{name!r}] {problem} {where}")
                    ok = False
                    continue
                worst = max(worst, err / threshold)
                if not err < threshold:
                    v.fail("wrong", f"grads[{name!r}] disagrees with the numerical gradient of the loss: error "
                                    f"{err:.2g} relative to its largest entry (threshold {threshold:g}) {where}")
                    ok = False
            v.record(probe, ok, "analytic against numerical gradients (error as a fraction of the threshold)",
                     worst, 1.0)
        else:
            ok, worst = True, 0.0
            missing = sorted(set(probe.expected["shapes"]) - set(value["shapes"]))
            if missing:
                v.fail("wrong", f"params has no {', '.join(map(repr, missing))}: cs231n's CaptioningRNN has "
                                f"{', '.join(sorted(probe.expected['shapes']))}")
                ok = False
            loss = _loss_value(v, value["loss"], where)
            if loss is not None:
                err, _, _ = error_of(np.float64(loss), probe.expected["loss"])
                worst = max(worst, err)
                if err > PARITY_TOLERANCE:
                    v.fail("wrong", f"the loss differs from fastrnn's by {err:.2g} (tolerance {PARITY_TOLERANCE:g}) "
                                    f"{where}")
                    ok = False
            for name, expected in probe.expected["grads"].items():
                if name not in value["grads"]:
                    v.fail("wrong", f"grads has no {name!r} {where}")
                    ok = False
                    continue
                err, problem, note = error_of(value["grads"][name], expected)
                if note:
                    v.note(f"grads[{name!r}] {note}")
                if problem is not None:
                    v.fail("wrong", f"grads[{name!r}] {problem} {where}")
                    ok = False
                    continue
                worst = max(worst, err)
                if err > PARITY_TOLERANCE:
                    v.fail("wrong", f"grads[{name!r}] differs from fastrnn's by {err:.2g} (max error relative to "
                                    f"max(1, |fastrnn's|); tolerance {PARITY_TOLERANCE:g}) {where}")
                    ok = False
            v.record(probe, ok, "loss and gradients against fastrnn.CaptioningRNN on the oracle", worst,
                     PARITY_TOLERANCE)
    result = {"checks": v.checks, "notes": v.notes, "location": None,
              "findings": [f["message"] + (f" ({f['location']})" if f["location"] else "") for f in v.failures]}
    if v.failures:
        status, first = headline(v.failures)
        more = len(v.failures) - 1
        result.update(status=status, location=first[0]["location"],
                      message=first[0]["message"] + (f" (and {more} more finding{'s' if more > 1 else ''})"
                                                     if more else ""))
    else:
        worst = max([c["error"] for c in v.checks if c["check"] == "parity" and c["error"] is not None] or [0.0])
        result.update(status="pass", message=f"the notebook's loss, the numerical gradient check of every "
                                             f"parameter, parity with fastrnn's model (worst {worst:.1g})")
    return result


def check_model(text, cells=CELLS, timeout=DEFAULT_TIMEOUT, memory_mb=DEFAULT_MEMORY_MB, seed=0, progress=None):
    """Checks the class ``text`` (``path/rnn.py:ClassName`` or ``dotted.module:ClassName``); the report.

    Raises TargetError (a ValueError) when the class cannot be checked at all.
    """
    target = resolve(text, want_class=True)
    began = time.perf_counter()
    results = []
    with Runner(target, [target.attr], timeout=timeout, memory_mb=memory_mb) as runner:
        info = runner.start()
        if not info["names"].get(target.attr):
            raise TargetError(f"{target.display()} has no class {target.attr}"
                              + (" (the name is not callable)" if target.attr in info["names"] else ""))
        for cell in cells:
            started = time.perf_counter()
            probes = _plan(target.attr, cell, seed)
            outcome = runner.request("batch", {"probes": [(p.op, p.kwargs) for p in probes]})
            if outcome.kind == "ok":
                result = _judge(probes, outcome.value, lambda frames: locate(frames, runner.root))
            elif outcome.kind == "time-out":
                result = {"status": "time-out", "message": outcome.message, "location": outcome.location,
                          "checks": [], "notes": []}
            else:
                result = {"status": "error", "message": outcome.message, "location": outcome.location,
                          "checks": [], "notes": [], "output": outcome.output}
            result = {"function": f"{target.attr}(cell_type={cell!r})", "family": cell, **result,
                      "seconds": round(time.perf_counter() - started, 3)}
            results.append(result)
            if progress is not None:
                progress(result)
        root = runner.root
    counts, ok = summarize(results)
    return {"kind": "model", "target": text, "module": info["name"], "file": info["file"], "root": root,
            "class": target.attr, "notes": info.get("notes", []), "seed": seed, "timeout": timeout,
            "memory_mb": memory_mb, "tolerance": PARITY_TOLERANCE, "results": results, "counts": counts, "ok": ok,
            "seconds": round(time.perf_counter() - began, 3)}
