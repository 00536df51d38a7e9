"""What ``fastrnn train`` runs: the three tasks, their defaults, and the lines it prints.

    job = prepare("charlm", {"epochs": 3, "checkpoint": "runs/lm"})
    print(job.header())
    job.train(on_epoch=lambda record: print(job.epoch_line(record)))
    print(job.summary_line())

``prepare`` takes plain options (the command line's, ``None`` meaning "the default") and builds the data,
the model, the task and the trainer. With ``resume`` the run's own options come from the checkpoint;
an option given again must agree with it (``epochs`` may grow; output options may change).
"""

import math
import os
import time

import numpy as np

from .. import _backend
from ..data import coco, sequences, text
from ..models import CaptioningRNN, CharLM, SequenceClassifier
from ..models import _recurrent
from . import checkpoint as _checkpoint
from . import logs
from .tasks import CaptionTask, CharLMTask, ClassifyTask
from .trainer import CHECKPOINT_NAME, Trainer

__all__ = ["KINDS", "DEFAULTS", "prepare", "Job"]

KINDS = ("charlm", "classify", "caption")

_COMMON = dict(cell="lstm", update_rule="adam", clip=5.0, clip_mode="norm", lr_decay=1.0, seed=0, dtype="float32")
# Chosen by measurement (README, "Training"): each reaches its target with these on 2 cores.
DEFAULTS = {
    "charlm": dict(_COMMON, hidden=256, embed=64, epochs=10, batch_size=32, seq_len=64, lr=2e-3, lr_decay=0.95,
                   text=None),
    "classify:sentiment": dict(_COMMON, hidden=64, embed=32, epochs=20, batch_size=16, lr=1e-2),
    "classify:digits": dict(_COMMON, hidden=128, embed=None, epochs=10, batch_size=32, lr=5e-3),
    "classify:file": dict(_COMMON, hidden=64, embed=32, epochs=20, batch_size=16, lr=1e-2),
    "caption": dict(_COMMON, hidden=512, embed=256, epochs=5, batch_size=100, lr=5e-3, lr_decay=0.95,
                    max_train=None, pca=True, beam_size=1, bleu_images=500, val_captions=1000),
}
# Options that define a run: a resumed run takes them from its checkpoint.
_RUN_OPTIONS = ("cell", "hidden", "embed", "batch_size", "seq_len", "lr", "lr_decay", "clip", "clip_mode",
                "update_rule", "seed", "dtype", "text", "dataset", "data", "max_train", "pca", "beam_size",
                "bleu_images", "val_captions")
# Options of this invocation only.
_SESSION_OPTIONS = ("backend", "checkpoint", "checkpoint_every", "resume", "json", "plot", "progress", "prime",
                    "sample_length", "temperature")


def _defaults_key(kind, options):
    if kind != "classify":
        return kind
    if options.get("data"):
        return "classify:file"
    return f"classify:{options.get('dataset') or 'sentiment'}"


def _resolve(kind, given, saved):
    """The run's options: the saved ones when resuming (conflicts are errors), else given over defaults."""
    if saved is not None:
        if saved.get("kind") != kind:
            raise ValueError(f"the checkpoint is of a `fastrnn train {saved.get('kind')}` run, not {kind}")
        conflicts = [f"--{k.replace('_', '-')} {given[k]!r} (the checkpoint has {saved['options'].get(k)!r})"
                     for k in _RUN_OPTIONS if given.get(k) is not None and k in saved["options"]
                     and _canonical(given[k]) != _canonical(saved["options"][k])]
        if conflicts:
            raise ValueError("a resumed run keeps its settings; these differ from the checkpoint's: "
                             + "; ".join(conflicts))
        options = dict(saved["options"])
    else:
        options = dict(DEFAULTS[_defaults_key(kind, given)])
        for k in _RUN_OPTIONS + ("epochs",):
            if given.get(k) is not None:
                options[k] = given[k]
        if kind == "classify" and not options.get("data"):
            options["dataset"] = options.get("dataset") or "sentiment"
        for k in ("text", "data"):  # saved absolute, so that --resume works from any folder
            if options.get(k):
                options[k] = os.path.abspath(options[k])
    for k in _SESSION_OPTIONS:
        options[k] = given.get(k)
    if given.get("epochs") is not None:  # the total to reach; a resumed run may go further than planned
        options["epochs"] = int(given["epochs"])
    return options


def _canonical(value):
    if isinstance(value, str) and os.path.exists(value):
        return os.path.abspath(value)
    return value


def _check_options(options):
    if options["clip_mode"] not in ("norm", "value"):
        raise ValueError(f"clip mode must be 'norm' or 'value', got {options['clip_mode']!r}")
    for key in ("hidden", "batch_size"):
        if int(options[key]) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {options[key]}")
    if options["epochs"] < 0:
        raise ValueError(f"--epochs must be at least 0, got {options['epochs']}")
    if not float(options["lr"]) > 0:
        raise ValueError(f"--lr must be positive, got {options['lr']}")
    if float(options["clip"]) < 0:
        raise ValueError(f"--clip must be >= 0 (0: no clipping), got {options['clip']}")
    _recurrent.check_cell(options["cell"])


def _build_charlm(options):
    corpus = text.load_corpus(options["text"])
    model = CharLM(corpus["chars"], embed_dim=options["embed"], hidden_dim=options["hidden"], cell_type=options["cell"],
                   dtype=options["dtype"], seed=options["seed"])
    task = CharLMTask(model, corpus, batch_size=options["batch_size"], seq_len=options["seq_len"])
    about = (f"{len(corpus['train_text']):,} training and {len(corpus['val_text']):,} validation characters, "
             f"{len(corpus['chars'])} distinct")
    return corpus, task, about


def _build_classify(options):
    if options.get("data"):
        data = sequences.load_phrases(options["data"])
    elif options["dataset"] == "digits":
        data = sequences.load_digits()
    elif options["dataset"] == "sentiment":
        data = sequences.load_sentiment()
    else:
        raise ValueError(f"unknown dataset {options['dataset']!r}; choose sentiment or digits (or --data FILE)")
    classes = len(data["classes"])
    if "idx_to_word" in data:
        model = SequenceClassifier(classes, vocab_size=len(data["idx_to_word"]), wordvec_dim=options["embed"],
                                   hidden_dim=options["hidden"], cell_type=options["cell"], dtype=options["dtype"],
                                   seed=options["seed"])
        shape = f"phrases of up to {data['train_x'].shape[1]} words, {len(data['idx_to_word'])} words known"
    else:
        model = SequenceClassifier(classes, input_dim=data["train_x"].shape[2], hidden_dim=options["hidden"],
                                   cell_type=options["cell"], dtype=options["dtype"], seed=options["seed"])
        shape = f"{data['train_x'].shape[1]} steps of {data['train_x'].shape[2]} features"
    task = ClassifyTask(model, data, batch_size=options["batch_size"])
    about = f"{len(data['train_y'])} training and {len(data['test_y'])} test sequences ({shape}), {classes} classes"
    return data, task, about


def _build_caption(options):
    if not options.get("data"):
        raise ValueError("fastrnn train caption needs --data DIR, the folder of cs231n's COCO captioning files")
    data = coco.load_coco_data(options["data"], max_train=None, pca_features=bool(options["pca"]))
    if options.get("max_train"):  # a fixed subset (the first captions), not cs231n's random draw
        keep = min(int(options["max_train"]), len(data["train_captions"]))
        data["train_captions"] = data["train_captions"][:keep]
        data["train_image_idxs"] = data["train_image_idxs"][:keep]
    state = np.random.get_state()
    np.random.seed(options["seed"])  # CaptioningRNN draws its initial weights from NumPy's global generator
    try:
        model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                              wordvec_dim=options["embed"], hidden_dim=options["hidden"], cell_type=options["cell"],
                              dtype=np.dtype(options["dtype"]).type)
    finally:
        np.random.set_state(state)
    task = CaptionTask(model, data, batch_size=options["batch_size"], beam_size=options["beam_size"],
                       bleu_images=options["bleu_images"], val_captions=options["val_captions"])
    about = (f"{len(data['train_captions']):,} training captions of {data['train_features'].shape[0]:,} images, "
             f"{len(data['val_captions']):,} validation captions, {len(data['word_to_idx']):,} words")
    return data, task, about


_BUILD = {"charlm": _build_charlm, "classify": _build_classify, "caption": _build_caption}


def prepare(kind, given):
    """A ready-to-train Job for ``fastrnn train <kind>`` with the options ``given`` (None = default)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    given = dict(given)
    backend = given.get("backend") or _backend.get_backend()
    if backend not in _backend.available_backends():
        raise ValueError(f"unknown or unavailable backend {backend!r}; available: "
                         f"{', '.join(_backend.available_backends())}")
    directory = given.get("checkpoint")
    path = None if directory is None else os.path.join(directory, CHECKPOINT_NAME)
    saved = None
    if given.get("resume"):
        if directory is None:
            raise ValueError("--resume needs --checkpoint DIR (the folder of the run to continue)")
        if not os.path.exists(path):
            raise FileNotFoundError(f"nothing to resume: checkpoint {path!r} not found")
        saved = _checkpoint.load(path)["config"].get("run")
        if saved is None:
            raise _checkpoint.CheckpointError(f"checkpoint {path!r} was not written by `fastrnn train` (no run "
                                              f"settings in it); resume it with fastrnn.train.Trainer")
    elif path is not None and os.path.exists(path):
        raise ValueError(f"{path!r} already exists: pass --resume to continue that run, or choose another "
                         f"--checkpoint folder")
    options = _resolve(kind, given, saved)
    options["backend"] = backend
    _check_options(options)
    if options.get("plot"):
        logs.require_matplotlib()  # before any training
    with _backend.use_backend(backend):
        data, task, about = _BUILD[kind](options)
    clip = float(options["clip"])
    run_config = {"kind": kind, "options": {k: options[k] for k in _RUN_OPTIONS + ("epochs",) if k in options}}
    trainer = Trainer(task, update_rule=options["update_rule"], optim_config={"learning_rate": float(options["lr"])},
                      lr_decay=float(options["lr_decay"]), num_epochs=options["epochs"],
                      clip_value=clip if clip and options["clip_mode"] == "value" else None,
                      clip_norm=clip if clip and options["clip_mode"] == "norm" else None,
                      seed=options["seed"], checkpoint_dir=directory, checkpoint_every=options.get("checkpoint_every"),
                      log_path=options.get("json"), plot_path=options.get("plot"), progress=options.get("progress"),
                      config={"run": run_config})
    if saved is not None:
        trainer.resume(path)
    return Job(kind, options, data, task, trainer, about)


class Job:
    """One ``fastrnn train`` run: the trainer plus what the command prints."""

    def __init__(self, kind, options, data, task, trainer, about):
        self.kind, self.options, self.data, self.task, self.trainer, self.about = kind, options, data, task, trainer, about
        self.model = task.model
        self.seconds = 0.0
        self.sample = None

    def header(self):
        o, t = self.options, self.trainer
        if self.kind == "charlm":
            what = f"character language model on {self.task.corpus_name}"
        elif self.kind == "classify":
            what = f"sequence classifier on {self.data['name']}"
        else:
            what = f"captioning model on {o['data']}"
        clip = "no clipping" if not float(o["clip"]) else f"clip {o['clip_mode']} {o['clip']:g}"
        lines = [f"fastrnn train {self.kind}: {what}",
                 f"  data     {self.about}",
                 f"  model    {o['cell'].upper()}, hidden {o['hidden']}" + (f", embedding {o['embed']}" if o.get('embed') else "")
                 + f", {sum(p.size for p in self.model.params.values()):,} parameters, {o['dtype']}",
                 f"  training {o['epochs']} epochs of {self.task.num_steps(self._plan())} steps, batch {o['batch_size']}"
                 + (f" x {o['seq_len']} chars" if self.kind == "charlm" else "")
                 + f", {o['update_rule']} lr {o['lr']:g}" + (f" decay {o['lr_decay']:g}/epoch" if o['lr_decay'] != 1 else "")
                 + f", {clip}, seed {o['seed']}, backend {o['backend']}"]
        if t.resumed_from:
            lines.append(f"  resumed  from {t.resumed_from} after epoch {t.epoch}"
                         + (f", step {t.step_in_epoch} of epoch {t.epoch + 1}" if t.plan is not None else ""))
        return "\n".join(lines)

    def _plan(self):
        return self.trainer.plan if self.trainer.plan is not None else self.task.epoch_plan(np.random.default_rng(0))

    def epoch_line(self, record):
        parts = [f"epoch {record['epoch']:>{len(str(self.options['epochs']))}}/{self.options['epochs']}",
                 f"train loss {record['train_loss']:.4f}"]
        if self.kind == "charlm":
            parts += [f"train {record['train_loss'] / math.log(2):.3f} bits/char",
                      f"val {record['val_bits_per_char']:.3f} bits/char"]
        elif self.kind == "classify":
            parts += [f"train acc {100 * record['train_accuracy']:.1f}%", f"test acc {100 * record['test_accuracy']:.1f}%"]
        elif "val_loss" in record:
            parts += [f"val loss {record['val_loss']:.3f}"] + [f"BLEU-{k} {record[f'val_bleu{k}']:.3f}" for k in (1, 4)]
        seconds = record["seconds"]
        parts += [f"{record['items_per_second']:,.0f} {self.task.unit}/s", f"{seconds:.{1 if seconds >= 1 else 2}f} s"]
        return "  ".join(parts)

    def train(self, on_epoch=None):
        """Trains on the chosen backend; ``on_epoch(record)`` after every epoch. Then the charlm sample."""
        if on_epoch is not None:
            self.trainer.on_epoch = lambda trainer, record: on_epoch(record)
        start = time.perf_counter()
        with _backend.use_backend(self.options["backend"]):
            self.trainer.train()
            if self.kind == "charlm":
                o = self.options
                prime = o.get("prime")
                if prime is None:  # the default corpus is English prose: start the sample like a sentence
                    prime = "The " if o.get("text") is None else ""
                self.sample = self.model.sample(
                    prime, length=400 if o.get("sample_length") is None else o["sample_length"],
                    temperature=0.7 if o.get("temperature") is None else o["temperature"], rng=o["seed"])
        self.seconds = time.perf_counter() - start
        if self.options.get("json"):
            self.trainer.write_log(extra={"sample": self.sample} if self.sample is not None else None)
        return self.trainer.history

    def summary_line(self):
        t, epochs = self.trainer, self.trainer.history["epochs"]
        parts = [f"done: {t.epoch} epochs, {t.step_count} steps" + (f", {self.seconds:.1f} s this run" if self.seconds else "")]
        if epochs:
            last = epochs[-1]
            if self.kind == "charlm":
                best = min(epochs, key=lambda r: r["val_bits_per_char"])
                parts.append(f"val {last['val_bits_per_char']:.3f} bits/char (best {best['val_bits_per_char']:.3f}, "
                             f"epoch {best['epoch']})")
            elif self.kind == "classify":
                parts.append(f"train accuracy {100 * last['train_accuracy']:.1f}%, "
                             f"test accuracy {100 * last['test_accuracy']:.1f}%")
            elif "val_bleu4" in last:
                parts.append(", ".join(f"BLEU-{k} {last[f'val_bleu{k}']:.3f}" for k in range(1, 5)))
            train_seconds = sum(r["train_seconds"] for r in epochs)
            per_epoch = train_seconds / len(epochs)
            parts.append(f"{per_epoch:.{1 if per_epoch >= 1 else 2}f} s/epoch training")
        for label, key in (("checkpoint", None), ("log", "json"), ("plot", "plot")):
            value = t.checkpoint_path if key is None else self.options.get(key)
            if value:
                parts.append(f"{label} {value}")
        return "; ".join(parts)
