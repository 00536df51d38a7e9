"""The ``fastrnn`` command: ``info``, ``check``, ``bench``, ``train``.

    fastrnn info                      versions, backends, CPU, BLAS and threads, Numba cache, workspace
    fastrnn check                     every backend against the NumPy oracle; exit 1 on a mismatch
    fastrnn check --module FILE       anybody's cs231n rnn_layers.py against the oracle (--model: CaptioningRNN)
    fastrnn bench                     oracle vs compiled backends vs torch vs the BLAS floor
    fastrnn train charlm|classify|caption   train a model (offline data by default), checkpoint, resume

The work is done in ``fastrnn.check``, ``fastrnn.bench`` (its ``machine``, ``harness``,
``workloads`` and ``report``) and ``fastrnn.train.run``; this module only parses arguments and prints.
"""

import argparse
import json
import os
import sys

from ._version import __version__

__all__ = ["main"]


def _csv(choices=None, allow_all=False):
    """An argparse type: a comma-separated list, each item checked against ``choices``."""
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if allow_all and items == ["all"]:
            return list(choices)
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        if choices is not None:
            bad = [t for t in items if t not in choices]
            if bad:
                raise argparse.ArgumentTypeError(
                    f"unknown {', '.join(bad)}; choose from {', '.join(choices)}" + (" or all" if allow_all else ""))
        return items
    return parse


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_list(text):
    """An argparse type: a comma-separated list of positive integers."""
    try:
        return [_positive(t) for t in _csv()(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}") from None


def _parser():
    from ._cells import CELLS
    from .bench.sizes import DEFAULT_BENCH_SIZES, SIZES
    from .bench.peak import DEFAULT_SIZES as PEAK_SIZES
    from .bench.peak import MIN_SIZES as PEAK_MIN
    from .bench.workloads import KINDS, PASSES

    parser = argparse.ArgumentParser(
        prog="fastrnn", description="cs231n's RNN layers with compiled time loops: information, checks, benchmarks.")
    parser.add_argument("--version", action="version", version=f"fastrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{info,check,bench,train}")
    sub.required = True

    info = sub.add_parser("info", help="versions, backends, CPU, BLAS and threads, Numba cache, kept scratch memory")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")

    check = sub.add_parser(
        "check", help="fastrnn's backends, or anybody's cs231n-style code, against the NumPy oracle",
        description="Without --module/--model: every fastrnn backend (or --backends) against the NumPy oracle on "
                    "random shapes, dtypes and layouts. With --module TARGET: every layer function of a cs231n-style "
                    "module (a file such as cs231n/rnn_layers.py, or a dotted name) against the oracle and the "
                    "notebooks' checks, run in a separate process with a time limit per function. With --model "
                    "TARGET[:Class]: a CaptioningRNN class (default class name CaptioningRNN). Exit status: 0 when "
                    "everything checked passes, 1 when anything fails, 2 for a usage error (such as a target that "
                    "cannot be imported).")
    check.add_argument("--backends", type=_csv(), default=None,
                       help="comma-separated backends, or importable modules to register as backends (default: "
                            "every available one)")
    check.add_argument("--module", metavar="TARGET", help="check a cs231n-style layer module: a .py file or a "
                                                          "dotted module name")
    check.add_argument("--model", metavar="TARGET[:Class]", help="check a CaptioningRNN class: path/rnn.py:Class or "
                                                                 "dotted.module:Class")
    check.add_argument("--only", type=_csv(), default=None, metavar="LIST",
                       help="with --module: families (affine, rnn, word_embedding, sigmoid, lstm, temporal_affine, "
                            "temporal_softmax_loss, gru) or function names; with --model: rnn and/or lstm")
    check.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="with --module/--model: time limit per function (default 20)")
    check.add_argument("--memory-limit", type=_positive, default=None, metavar="MB",
                       help="with --module/--model: address space the checked code may use beyond the checker's "
                            "worker (default 2048; POSIX only)")
    check.add_argument("--junit", metavar="FILE", help="with --module/--model: also write a JUnit XML report")
    check.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    check.add_argument("--trials", type=_positive, default=None,
                       help="backends mode: random draws of shapes and dtype (default 50)")
    check.add_argument("--markdown", action="store_true", help="backends mode: print a Markdown table")
    check.add_argument("--json", metavar="FILE", help="also write the result as JSON ('-' for stdout only)")

    bench = sub.add_parser(
        "bench", help="time the oracle, the compiled backends, torch and the BLAS floor",
        description="Times every implementation on the same inputs in one process, after checking its values and "
                    "gradients against the oracle: medians of interleaved rounds, ratios from the same run.")
    bench.add_argument("--kinds", type=_csv(KINDS, allow_all=True), default=list(KINDS),
                       help=f"what to time: {', '.join(KINDS)} (default all)")
    bench.add_argument("--cells", type=_csv(CELLS), default=list(CELLS), help=f"{','.join(CELLS)} (default all)")
    bench.add_argument("--sizes", type=_csv(tuple(SIZES), allow_all=True), default=list(DEFAULT_BENCH_SIZES),
                       help=f"{', '.join(f'{k}={tuple(v)}' for k, v in SIZES.items())} as (N,T,D,H), or all "
                            f"(default {','.join(DEFAULT_BENCH_SIZES)}); the model and sample run at their own sizes")
    bench.add_argument("--dtypes", type=_csv(("float32", "float64")), default=["float32", "float64"],
                       help="float32,float64 (default both; the model and sample are float32)")
    bench.add_argument("--passes", type=_csv(PASSES), default=list(PASSES),
                       help="fwd,fwd+bwd (default both; the model is fwd+bwd, sample fwd)")
    bench.add_argument("--backends", type=_csv(), default=None,
                       help="fastrnn backends and/or torch to time (default: every available one, and torch when "
                            "installed); the oracle and the BLAS floor always run")
    bench.add_argument("--rounds", type=_positive, default=None,
                       help="interleaved rounds per case (default: 9, 7 or 5 as one round takes <0.05 s, <0.25 s, more)")
    bench.add_argument("--threads", type=_positive, default=None,
                       help="limit BLAS threads (threadpoolctl) and set torch's to the same (default: leave BLAS "
                            "as it is, torch gets as many)")
    bench.add_argument("--peak-sizes", type=_positive_list, default=None, metavar="N[,N...]",
                       help="sizes n of the square GEMMs that measure the machine's peak (default: "
                            f"{','.join(map(str, PEAK_SIZES[:PEAK_MIN]))}, then {','.join(map(str, PEAK_SIZES[PEAK_MIN:]))}"
                            " while the rate still rises)")
    bench.add_argument("--seed", type=int, default=0, help="random seed of the inputs (default 0)")
    bench.add_argument("--json", metavar="FILE", help="write the full report (every sample, the machine) as JSON")
    bench.add_argument("--plot", metavar="FILE.png", help="draw share of peak and speed-ups (needs matplotlib)")
    bench.add_argument("--markdown", action="store_true", help="print Markdown tables (for a README)")
    progress = bench.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a progress bar on stderr (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    _train_parser(sub)
    return parser


def _number(kind, minimum=None, name=""):
    """An argparse type: ``kind`` (int or float) at least ``minimum``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value
    return parse


def _train_parser(sub):
    """``fastrnn train <kind>``; every default is None here: fastrnn.train.run fills in each kind's own."""
    from .train.run import DEFAULTS

    train = sub.add_parser(
        "train", help="train a character language model, a sequence classifier or the captioning model",
        description="Real training runs, offline by default: per-epoch metric lines, validation every epoch, "
                    "HDF5 checkpoints that resume bit-identically, a JSON log and a PNG learning curve.")
    kinds = train.add_subparsers(dest="kind", metavar="{charlm,classify,caption}")
    kinds.required = True

    def common(p, d):
        g = p.add_argument_group("model and training (defaults for this kind in brackets)")
        g.add_argument("--cell", choices=("rnn", "lstm", "gru"), help=f"recurrent cell [{d['cell']}]")
        g.add_argument("--hidden", type=_number(int, 1), help=f"hidden size [{d['hidden']}]")
        if d.get("embed"):
            g.add_argument("--embed", type=_number(int, 1), help=f"embedding size [{d['embed']}]")
        g.add_argument("--epochs", type=_number(int, 0), help=f"epochs in all (with --resume: the total to reach) "
                                                              f"[{d['epochs']}]")
        g.add_argument("--batch-size", type=_number(int, 1), help=f"minibatch size [{d['batch_size']}]")
        g.add_argument("--lr", type=_number(float), help=f"learning rate [{d['lr']:g}]")
        g.add_argument("--lr-decay", type=_number(float), help=f"learning-rate factor after each epoch [{d['lr_decay']:g}]")
        g.add_argument("--update-rule", choices=("sgd", "sgd_momentum", "rmsprop", "adam"),
                       help=f"update rule [{d['update_rule']}]")
        g.add_argument("--clip", type=_number(float, 0), help=f"gradient clipping threshold, 0 for none [{d['clip']:g}]")
        g.add_argument("--clip-mode", choices=("norm", "value"),
                       help=f"clip the global norm, or each value into [-clip, clip] [{d['clip_mode']}]")
        g.add_argument("--dtype", choices=("float32", "float64"), help=f"parameter dtype [{d['dtype']}]")
        g.add_argument("--seed", type=int, help=f"seed of the initial weights and the data order [{d['seed']}]")
        r = p.add_argument_group("run")
        r.add_argument("--backend", help="fastrnn backend (default: the active one, the fastest available)")
        r.add_argument("--checkpoint", metavar="DIR", help="write DIR/checkpoint.h5 after every epoch")
        r.add_argument("--checkpoint-every", type=_number(int, 1), metavar="STEPS",
                       help="also checkpoint every STEPS steps inside an epoch")
        r.add_argument("--resume", action="store_true",
                       help="continue the run in --checkpoint DIR (its settings come from the checkpoint)")
        r.add_argument("--json", metavar="FILE", help="write a JSON log (config, per-step losses, per-epoch records)")
        r.add_argument("--plot", metavar="FILE.png", help="draw the learning curve (needs matplotlib)")
        progress = r.add_mutually_exclusive_group()
        progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                              help="show a progress bar on stderr (default: when stderr is a terminal)")
        progress.add_argument("--no-progress", dest="progress", action="store_false")

    d = DEFAULTS["charlm"]
    charlm = kinds.add_parser("charlm", help="character-level language model (default text: Python's own docs)",
                              description="A character-level language model trained by truncated BPTT; reports "
                                          "validation bits per character every epoch and prints a sample at the end.")
    charlm.add_argument("--text", metavar="FILE", help="a UTF-8 text file (default: CPython's pydoc_data.topics)")
    charlm.add_argument("--seq-len", type=_number(int, 1), help=f"characters per BPTT chunk [{d['seq_len']}]")
    charlm.add_argument("--prime", help="text the sample starts from [\"The \" on the default corpus, else none]")
    charlm.add_argument("--sample-length", type=_number(int, 0), help="characters to sample at the end [400]")
    charlm.add_argument("--temperature", type=_number(float, 0), help="sampling temperature, 0 = greedy [0.7]")
    common(charlm, d)

    d = DEFAULTS["classify:sentiment"]
    classify = kinds.add_parser("classify", help="many-to-one sequence classifier (sentiment phrases or 8x8 digits)",
                                description="A many-to-one recurrent classifier; reports train and test accuracy "
                                            "every epoch. Defaults differ per dataset: "
                                            + "; ".join(f"{k.split(':')[1]}: hidden {v['hidden']}, {v['epochs']} "
                                                        f"epochs, batch {v['batch_size']}, lr {v['lr']:g}"
                                                        for k, v in DEFAULTS.items() if k.startswith("classify:")))
    source = classify.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=("sentiment", "digits"), help="a data set shipped with fastrnn [sentiment]")
    source.add_argument("--data", metavar="FILE", help="your phrases: lines 'label<TAB>phrase' (or "
                                                       "'train|test<TAB>label<TAB>phrase')")
    common(classify, d)

    d = DEFAULTS["caption"]
    caption = kinds.add_parser("caption", help="cs231n's CaptioningRNN on the COCO captioning files",
                               description="CaptioningRNN on cs231n's COCO files; reports validation loss and "
                                           "corpus BLEU-1..4 every epoch.")
    caption.add_argument("--data", metavar="DIR", required=True,
                         help="the folder of cs231n's coco_captioning files (coco2014_captions.h5, ...)")
    caption.add_argument("--max-train", type=_number(int, 1), help="train on the first N captions only [all]")
    caption.add_argument("--beam-size", type=_number(int, 1), help=f"beam size for the BLEU captions, 1 = greedy "
                                                                   f"[{d['beam_size']}]")
    caption.add_argument("--bleu-images", type=_number(int, 1), help=f"validation images scored by BLEU "
                                                                     f"[{d['bleu_images']}]")
    caption.add_argument("--val-captions", type=_number(int, 1), help=f"validation captions for the loss "
                                                                      f"[{d['val_captions']}]")
    common(caption, d)


def _dump(obj, path=None):
    """``obj`` as strict JSON on stdout, or to ``path`` (atomically)."""
    from ._output import jsonable, write_json

    if path in (None, "-"):
        print(json.dumps(jsonable(obj), indent=2, allow_nan=False))
    else:
        write_json(path, obj)


def _info(args):
    from .bench import machine

    info = machine.describe()
    if args.json:
        _dump(info)
        return 0
    v, c, nc = info["versions"], info["cpu"], info["numba_cache"]
    print(f"fastrnn {v['fastrnn']}  (python {v['python']})")
    for name in ("numpy", "scipy", "numba", "Cython", "torch", "threadpoolctl"):
        print(f"  {name:<14}{v[name] or 'not installed'}")
    b = info["backends"]
    env = os.environ.get("FASTRNN_BACKEND")
    print(f"backends        {', '.join(b['available'])}")
    print(f"active backend  {b['active']}" + (f"  (FASTRNN_BACKEND={env})" if env else "  (the fastest available)"))
    print(f"CPU             {c['model']} ({c['machine']}), {c['logical_cores']} logical cores, "
          f"{c['usable_cores']} usable; {c['system']}")
    users = {"numpy": "numpy.matmul: the oracle and the BLAS floor", "scipy": "scipy.linalg.cython_blas",
             "torch": "torch"}
    for lib in info["blas"]:
        print(f"{lib['user_api'].upper() + ' library':<16}{lib['internal_api']} {lib['version'] or ''} "
              f"({lib['architecture'] or lib['threading_layer'] or '-'}), {lib['num_threads']} threads, "
              f"from {lib['loaded_by'] or '?'}" + (f" ({users[lib['loaded_by']]})" if lib["loaded_by"] in users
                                                   else ""))
        print(f"{'':<16}{lib['filepath']}")
    nat = info.get("native")
    if nat is None:
        print("packed kernels  not built (the compiled backends use BLAS per step)")
    else:
        how = f"FASTRNN_ISA={nat['isa_forced']}" if nat["isa_forced"] else "chosen for this CPU"
        state = ("sequence and affine layers run on the thread team" if nat["enabled"]
                 else "off: FASTRNN_NATIVE=0, the compiled backends use BLAS per step")
        print(f"packed kernels  {nat['isa']} ({how}; panel width float32 {nat['nr_float32']}, float64 "
              f"{nat['nr_float64']}); {state}")
    print(f"numba cache     {nc['path']}  ({nc['source']}; {nc['cached_kernel_indexes']} cached kernel indexes)")
    for line in _workspace_lines(info["workspace"]):
        print(line)
    return 0


def _mib(nbytes):
    return f"{nbytes / 2**20:.1f} MiB" if nbytes else "0"


def _workspace_lines(ws):
    """The kernels' kept scratch: the cap, the total, one line per thread that holds any."""
    source = {"default": "the default; FASTRNN_WORKSPACE_MB or fastrnn.set_workspace_limit() changes it",
              "FASTRNN_WORKSPACE_MB": "from FASTRNN_WORKSPACE_MB",
              "set_workspace_limit": "set by fastrnn.set_workspace_limit()"}.get(ws["limit_source"], ws["limit_source"])
    held = [t for t in ws["threads"] if t["bytes"]]
    lines = [f"workspace       kept scratch per thread at most {_mib(ws['limit_bytes'])} ({source})",
             f"{'':<16}held now: {_mib(ws['total_bytes'])} in {len(held)} thread{'s' * (len(held) != 1)}"
             + ("" if ws["malloc_trim"] else "; this C library has no malloc_trim")]
    for t in held:
        lines.append(f"{'':<16}  {t['name']} ({t['ident']}): {_mib(t['bytes'])}" + (", in use" if t["in_use"] else ""))
    pool = ws.get("pool")
    if pool is not None:
        lines.append(f"{'':<16}array pool (all threads): {_mib(pool['held_bytes'])} kept, at most "
                     f"{_mib(pool['cap_bytes'])}")
    return lines


def _check(args):
    if args.module or args.model:
        return _check_code(args)
    for option in ("only", "timeout", "memory_limit", "junit"):
        if getattr(args, option) is not None:
            print(f"fastrnn check: error: --{option.replace('_', '-')} goes with --module or --model",
                  file=sys.stderr)
            return 2
    from .check import backends as check

    if args.backends and any("." in b for b in args.backends) and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # module names import from here, as with ``python -m``
    try:
        result = check.run(backends=args.backends, seed=args.seed, trials=args.trials or 50)
    except ValueError as exc:
        print(f"fastrnn check: error: {exc}", file=sys.stderr)
        return 2
    if args.json == "-":
        _dump(result)
    else:
        print(check.table(result, markdown=args.markdown))
        if args.json:
            _dump(result, args.json)
    return 0 if result["ok"] else 1


def _check_code(args):
    """``fastrnn check --module/--model``: prints each function's result as it comes."""
    from .check import model, module, report, runner

    if args.backends or args.trials or args.markdown:
        print("fastrnn check: error: --backends, --trials and --markdown check fastrnn's backends; they do not go with "
              "--module or --model", file=sys.stderr)
        return 2
    if args.timeout is not None and not args.timeout > 0:
        print("fastrnn check: error: --timeout must be positive", file=sys.stderr)
        return 2
    limits = dict(timeout=args.timeout or runner.DEFAULT_TIMEOUT, memory_mb=args.memory_limit or runner.DEFAULT_MEMORY_MB,
                  seed=args.seed)
    quiet = args.json == "-"
    say = (lambda text: None) if quiet else (lambda text: print(text, flush=True))
    jobs = []
    if args.module:
        jobs.append(("module", args.module, lambda progress: module.check_module(
            args.module, only=[o for o in args.only or [] if o not in model.CELLS or args.model is None] or None,
            progress=progress, **limits)))
    if args.model:
        cells = [c for c in model.CELLS if not args.only or c in args.only] or list(model.CELLS)
        jobs.append(("model", args.model, lambda progress: model.check_model(args.model, cells=cells,
                                                                               progress=progress, **limits)))
    reports = []
    for kind, target, run in jobs:
        say(report.header(kind, target))
        try:
            result = run(lambda r: say(report.line(r)))
        except ValueError as exc:  # TargetError, an unknown --only item
            print(f"fastrnn check: error: {exc}", file=sys.stderr)
            return 2
        say(report.summary(result))
        reports.append(result)
    status = report.exit_status(reports)
    if args.json == "-":
        print(json.dumps(report.jsonable({"ok": status == 0, "exit_status": status, "reports": reports}), indent=2))
    elif args.json:
        report.write_json(reports, args.json)
        say(f"wrote {args.json}")
    if args.junit:
        report.write_junit(reports, args.junit)
        say(f"wrote {args.junit}")
    return status


def _bench(args):
    from .bench import harness as bench
    from .bench import plot as bench_plot
    from .bench import report as bench_report
    from .bench import workloads

    if args.plot:
        try:
            bench_plot.require_matplotlib()  # fail before spending a minute measuring
        except ImportError as exc:
            print(f"fastrnn bench: error: {exc}", file=sys.stderr)
            return 2
    try:
        names = bench.implementations(args.backends)
    except ValueError as exc:
        print(f"fastrnn bench: error: {exc}", file=sys.stderr)
        return 2
    cases = workloads.cases(kinds=args.kinds, cells=args.cells, sizes=args.sizes, dtypes=args.dtypes,
                            passes=args.passes)
    if not cases:
        print("fastrnn bench: error: no case matches these options", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    report = bench.run(cases, names, rounds=args.rounds, threads=args.threads, seed=args.seed, progress=progress,
                       peak_sizes=args.peak_sizes)
    print(bench_report.table(report, markdown=args.markdown))
    if args.json:
        _dump(report, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot:
        bench_plot.plot(report, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0 if report["ok"] else 1


def _train(args):
    from .data import DataFileError
    from .train import run
    from .train.checkpoint import CheckpointError

    options = {k: v for k, v in vars(args).items() if k not in ("command", "kind")}
    try:
        job = run.prepare(args.kind, options)
    except (FileNotFoundError, IsADirectoryError, DataFileError, CheckpointError, ValueError, ImportError) as exc:
        print(f"fastrnn train {args.kind}: error: {exc}", file=sys.stderr)
        return 2
    print(job.header(), flush=True)
    try:
        job.train(on_epoch=lambda record: print(job.epoch_line(record), flush=True))
    except KeyboardInterrupt:
        where = job.trainer.checkpoint_path
        print(f"\ninterrupted after {job.trainer.step_count} steps"
              + (f"; resume from the last complete checkpoint with --checkpoint {args.checkpoint} --resume"
                 if where and os.path.exists(where) else ""), file=sys.stderr)
        return 130
    if job.sample is not None:
        print("sample:")
        print(job.sample)
    print(job.summary_line())
    return 0


def main(argv=None):
    """Runs the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    return {"info": _info, "check": _check, "bench": _bench, "train": _train}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
