"""Reports of ``fastrnn check --module/--model``: a text table, JSON, and JUnit XML for CI systems.

The text is written line by line as functions finish (``header``, ``line``, ``summary``), so a
long check shows progress. The files are written to a temporary file and renamed, so an
interrupted run never leaves half a report where CI expects one.
"""

import xml.etree.ElementTree as ET

from .. import _output
from .._output import jsonable
from .._version import __version__
from .functions import STATUSES

__all__ = ["header", "line", "summary", "exit_status", "write_json", "write_junit", "jsonable"]

_WIDTH = 26  # the function column


def header(kind, target):
    what = "module" if kind == "module" else "model"
    return (f"fastrnn {__version__} check --{what} {target}: against the NumPy oracle (fastrnn.reference) and the "
            f"cs231n notebooks' checks\n{'function':<{_WIDTH}} {'result':<16} details")


def line(result):
    """One function's result: name, status, details; the file:line and notes on lines below."""
    status = result["status"]
    shown = status if status == "pass" else status.upper()
    name = result["function"]
    if len(name) > _WIDTH:
        out = [name, f"{'':<{_WIDTH}} {shown:<16} {result['message']}"]
    else:
        out = [f"{name:<{_WIDTH}} {shown:<16} {result['message']}"]
    pad = " " * (_WIDTH + 18)
    if result.get("location"):
        out.append(f"{pad}at {result['location']}")
    for note in result.get("notes", []):
        out.append(f"{pad}note: {note}")
    return "\n".join(out)


def exit_status(reports):
    """0 when every checked function of every report passes, else 1."""
    return 0 if reports and all(r["ok"] for r in reports) else 1


def summary(report):
    """The one-line summary (and the notes about the whole target above it)."""
    counts = report["counts"]
    n = len(report["results"])
    parts = [f"{counts[s]} {s}" for s in STATUSES if counts[s]]
    what = "functions" if report["kind"] == "module" else "cell types"
    out = [f"note: {note}" for note in report.get("notes", [])]
    out.append(f"{n} {what} checked in {report['seconds']:.1f} s: {', '.join(parts) or 'none'} -> "
               f"{'PASS' if report['ok'] else 'FAIL'}")
    failed = [r["function"] for r in report["results"] if r["status"] != "pass"]
    if failed:
        out.append(f"not passing: {', '.join(failed)}")
    return "\n".join(out)


def write_json(reports, path):
    """``{"ok", "exit_status", "reports": [...]}`` to ``path``."""
    data = {"ok": exit_status(reports) == 0, "exit_status": exit_status(reports), "reports": reports}
    _output.write_json(path, data)


# JUnit: a wrong or unimplemented function is a failure, an exception, crash or time-out an
# error, an untestable backward is skipped (its forward's failure is already reported).
_JUNIT = {"wrong": "failure", "not implemented": "failure", "error": "error", "time-out": "error",
          "untestable": "skipped"}


def _details(result):
    out = [result["message"]]
    if result.get("location"):
        out.append(f"at {result['location']}")
    out += [f"- {finding}" for finding in result.get("findings", [])]
    out += [f"note: {n}" for n in result.get("notes", [])]
    if result.get("output"):
        out.append("output of the checked code before it ended:\n" + result["output"])
    return "\n".join(out)


def write_junit(reports, path):
    """JUnit XML: one ``<testsuite>`` per report, one ``<testcase>`` per function (or cell type)."""
    root = ET.Element("testsuites", name="fastrnn check")
    totals = dict(tests=0, failures=0, errors=0, skipped=0)
    total_time = 0.0
    for report in reports:
        counts = dict(tests=len(report["results"]), failures=0, errors=0, skipped=0)
        for r in report["results"]:
            kind = _JUNIT.get(r["status"])
            if kind:
                counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[kind]] += 1
        suite = ET.SubElement(root, "testsuite", name=f"fastrnn check --{report['kind']} {report['target']}",
                              time=f"{report['seconds']:.3f}", **{k: str(v) for k, v in counts.items()})
        props = ET.SubElement(suite, "properties")
        for key in ("target", "module", "file", "seed", "timeout", "memory_mb", "tolerance"):
            if report.get(key) is not None:
                ET.SubElement(props, "property", name=key, value=str(report[key]))
        classname = report.get("module") or report["target"]
        for r in report["results"]:
            case = ET.SubElement(suite, "testcase", classname=classname, name=r["function"], time=f"{r['seconds']:.3f}")
            kind = _JUNIT.get(r["status"])
            if kind == "skipped":
                ET.SubElement(case, "skipped", message=f"untestable: {r['message']}")
            elif kind:
                element = ET.SubElement(case, kind, type=r["status"], message=r["message"])
                element.text = _details(r)
            if r.get("notes"):
                ET.SubElement(case, "system-out").text = "\n".join(f"note: {n}" for n in r["notes"])
        if report.get("notes"):
            ET.SubElement(suite, "system-out").text = "\n".join(f"note: {n}" for n in report["notes"])
        for k in totals:
            totals[k] += counts[k]
        total_time += report["seconds"]
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    _output.write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
