"""One training loop for every model: minibatches, an update rule, clipping, validation, checkpoints.

    task = CharLMTask(model, corpus, batch_size=32, seq_len=64)      # fastrnn.train.tasks
    trainer = Trainer(task, update_rule="adam", optim_config={"learning_rate": 2e-3},
                      clip_norm=5.0, num_epochs=10, checkpoint_dir="runs/charlm", log_path="log.json")
    trainer.train()

What a model and its data must provide is a *task* (see ``Task``): the data order of an epoch drawn
from the trainer's random generator (the "plan"), the loss and gradients of one step of that plan,
the state carried from step to step if any, and a validation pass.

Resuming: ``Trainer.resume(path)`` (or ``resume=True`` with a ``checkpoint_dir``) restores everything
that influences the rest of the run (parameters, update-rule state, random generator states, epoch,
step, the epoch's data order and position, carried state, learning rate after decay, history), so
training on gives the bit-identical parameters of a run that was never interrupted, on the same
backend and BLAS.
"""

import math
import os
import sys
import time

import numpy as np

from . import checkpoint as _checkpoint
from . import clip as _clip
from . import logs as _logs
from . import optim

__all__ = ["Task", "Trainer", "CHECKPOINT_NAME", "resolve_update_rule"]

CHECKPOINT_NAME = "checkpoint.h5"


def resolve_update_rule(rule):
    """An update rule: a name in ``fastrnn.optim`` or a callable ``(w, dw, config) -> (w, config)``."""
    if callable(rule):
        return rule
    if isinstance(rule, str) and rule in optim.__all__:
        return getattr(optim, rule)
    raise ValueError(f'Invalid update_rule "{rule}"; expected one of {optim.__all__} or a callable')


class Task:
    """What the trainer needs from a model and its data; subclasses fill in the methods.

    Attributes: ``model`` (with a ``params`` dict of arrays), ``unit`` (what an item is, for the
    throughput: "chars", "sequences", ...), ``metric`` (the key of the headline validation number in
    ``evaluate()``'s dict, e.g. "val_accuracy") and ``uses_global_rng`` (True when steps draw from
    NumPy's global random state, which a checkpoint must then keep too).
    """

    unit = "items"
    metric = None
    loss_name = "training loss"
    uses_global_rng = False

    def epoch_plan(self, rng):
        """The data order of one epoch (an integer array), drawn from ``rng``."""
        raise NotImplementedError

    def num_steps(self, plan):
        """How many steps the epoch of ``plan`` has."""
        raise NotImplementedError

    def step(self, plan, index):
        """Loss and gradients of step ``index`` of ``plan``: ``(loss, grads, items)``."""
        raise NotImplementedError

    def epoch_items(self, plan):
        """How many items (characters, sequences, ...) the epoch of ``plan`` has (for the progress bar)."""
        return None

    def items_before(self, plan, index):
        """How many items the steps before step ``index`` of ``plan`` hold."""
        return 0

    def evaluate(self):
        """Validation metrics, a dict of numbers keyed ``val_*``; called after every epoch."""
        return {}

    def reset_carry(self):
        """Forgets state carried between steps; called at the start of every epoch."""

    def get_carry(self):
        """State carried from one step to the next, as a dict of arrays (saved in checkpoints)."""
        return {}

    def set_carry(self, carry):
        """Restores what ``get_carry`` returned."""

    def config(self):
        """A JSON-able description of the model and data, saved in checkpoints and the log."""
        return {}


class Trainer:
    """Trains ``task.model`` with minibatch gradient descent.

    Keyword arguments:

    - ``update_rule`` ("sgd", "sgd_momentum", "rmsprop", "adam" or a callable of that signature) and
      ``optim_config`` (its settings, copied for every parameter);
    - ``lr_decay``: every parameter's learning rate is multiplied by it after each epoch;
    - ``num_epochs``; ``max_steps`` stops earlier, after that many steps in all;
    - ``clip_value`` (clip every gradient entry into [-v, v]) and/or ``clip_norm`` (scale all gradients
      together down to that global L2 norm); value clipping comes first when both are given;
    - ``seed`` of the trainer's random generator, which draws the data order;
    - ``checkpoint_dir``: ``checkpoint.h5`` is written there after every epoch (and every
      ``checkpoint_every`` steps); ``resume=True`` continues from it when it exists;
    - ``log_path``: a JSON log rewritten after every epoch; ``plot_path``: a PNG learning curve at the end;
    - ``progress``: a tqdm bar on stderr (loss, items/s, ETA); default: when stderr is a terminal;
    - ``on_step(trainer, loss)`` and ``on_epoch(trainer, record)``: callbacks;
    - ``config``: extra JSON-able settings to keep in checkpoints and the log (e.g. the command line).
    """

    def __init__(self, task, *, update_rule="adam", optim_config=None, lr_decay=1.0, num_epochs=10, max_steps=None,
                 clip_value=None, clip_norm=None, seed=0, checkpoint_dir=None, checkpoint_every=None, resume=False,
                 log_path=None, plot_path=None, progress=None, on_step=None, on_epoch=None, config=None):
        self.task = task
        self.model = task.model
        self.update_rule = resolve_update_rule(update_rule)
        self.lr_decay = float(lr_decay)
        self.num_epochs = int(num_epochs)
        if self.num_epochs < 0:
            raise ValueError(f"num_epochs must be at least 0, got {num_epochs}")
        self.max_steps = None if max_steps is None else int(max_steps)
        self.clip_value = None if clip_value is None else _clip._positive("clip_value", clip_value)
        self.clip_norm = None if clip_norm is None else _clip._positive("clip_norm", clip_norm)
        self.seed = seed
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.checkpoint_every = None if not checkpoint_every else int(checkpoint_every)
        self.log_path = log_path
        self.plot_path = plot_path
        self.progress = progress
        self.on_step = on_step
        self.on_epoch = on_epoch
        self.extra_config = dict(config or {})
        if plot_path is not None:
            _logs.require_matplotlib()  # fail now, not after the run

        self.rng = np.random.default_rng(seed)
        self.optim_configs = {name: dict(optim_config or {}) for name in self.model.params}
        self.epoch = 0  # completed epochs
        self.step_count = 0  # completed steps, all epochs
        self.step_in_epoch = 0
        self.plan = None  # the current epoch's data order; None between epochs
        self.history = {"metric": task.metric, "unit": task.unit, "loss_name": task.loss_name, "loss": [],
                        "epochs": []}
        self.resumed_from = None
        if resume:
            if self.checkpoint_dir is None:
                raise ValueError("resume=True needs a checkpoint_dir")
            path = self.checkpoint_path
            if os.path.exists(path):
                self.resume(path)

    # ------------------------------------------------------------------ configuration and state

    @property
    def checkpoint_path(self):
        return None if self.checkpoint_dir is None else os.path.join(self.checkpoint_dir, CHECKPOINT_NAME)

    @property
    def rule_name(self):
        return getattr(self.update_rule, "__name__", repr(self.update_rule))

    def config(self):
        """The run's settings: trainer, task (model and data) and extras."""
        return {
            "task": self.task.config(),
            "trainer": {"update_rule": self.rule_name, "lr_decay": self.lr_decay, "num_epochs": self.num_epochs,
                        "max_steps": self.max_steps, "clip_value": self.clip_value, "clip_norm": self.clip_norm,
                        "seed": self.seed},
            **self.extra_config,
        }

    def state(self):
        """Everything a checkpoint keeps (see ``fastrnn.train.checkpoint``)."""
        return {
            "epoch": self.epoch,
            "step": self.step_count,
            "step_in_epoch": self.step_in_epoch,
            "update_rule": self.rule_name,
            "rng": self.rng.bit_generator.state,
            "config": self.config(),
            "history": self.history,
            "params": self.model.params,
            "optim": self.optim_configs,
            "plan": self.plan,
            "carry": self.task.get_carry() if self.plan is not None else {},
            "np_random": np.random.get_state() if self.task.uses_global_rng else None,
        }

    def save_checkpoint(self, path=None):
        """Writes the checkpoint (atomically) to ``path``, by default ``checkpoint_dir/checkpoint.h5``."""
        path = path or self.checkpoint_path
        if path is None:
            raise ValueError("save_checkpoint needs a path or a checkpoint_dir")
        _checkpoint.save(path, self.state())
        return path

    def resume(self, path):
        """Restores the state saved in checkpoint ``path``; ``train()`` then carries on from there.

        The model must have the same parameters (names, shapes, dtypes) as the one that was saved:
        anything else is a CheckpointError naming the file.
        """
        state = _checkpoint.load(path)
        params = self.model.params
        saved = state["params"]
        if set(saved) != set(params):
            raise _checkpoint.CheckpointError(
                f"checkpoint {os.fspath(path)!r} holds parameters {sorted(saved)}, the model has {sorted(params)}")
        for name, value in saved.items():
            if value.shape != params[name].shape or value.dtype != params[name].dtype:
                raise _checkpoint.CheckpointError(
                    f"checkpoint {os.fspath(path)!r}: parameter {name} is {value.dtype} {value.shape}, the model's is "
                    f"{params[name].dtype} {params[name].shape} (a different model configuration?)")
        if set(state["optim"]) != set(params):
            raise _checkpoint.CheckpointError(f"checkpoint {os.fspath(path)!r}: optimizer state does not match "
                                              f"the parameters")
        if state["update_rule"] != self.rule_name:
            raise _checkpoint.CheckpointError(f"checkpoint {os.fspath(path)!r} was trained with update rule "
                                              f"{state['update_rule']!r}, this trainer uses {self.rule_name!r}")
        for name, value in saved.items():
            params[name] = value
        self.optim_configs = state["optim"]
        self.rng.bit_generator.state = state["rng"]
        self.epoch = int(state["epoch"])
        self.step_count = int(state["step"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.plan = state["plan"]
        self.history = state["history"]
        if self.plan is not None:
            self.task.set_carry(state["carry"])
        if state["np_random"] is not None:
            np.random.set_state(state["np_random"])
        self.resumed_from = os.fspath(path)
        return self

    # ------------------------------------------------------------------ training

    def _show_progress(self):
        if self.progress is not None:
            return bool(self.progress)
        try:
            return sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False

    def _update(self, grads):
        if self.clip_value is not None:
            grads = _clip.clip_by_value(grads, self.clip_value)
        if self.clip_norm is not None:
            grads, _ = _clip.clip_by_global_norm(grads, self.clip_norm)
        params = self.model.params
        for name, w in params.items():
            params[name], self.optim_configs[name] = self.update_rule(w, grads[name], self.optim_configs[name])

    def _done(self):
        return self.epoch >= self.num_epochs or (self.max_steps is not None and self.step_count >= self.max_steps)

    def train(self):
        """Trains until ``num_epochs`` epochs (or ``max_steps`` steps) are done; returns the history.

        After every epoch: learning-rate decay, validation, the epoch's record in the history, the
        checkpoint, the JSON log and ``on_epoch``. The learning curve is drawn at the end.
        """
        task = self.task
        while not self._done():
            if self.plan is None:
                self.plan = np.asarray(task.epoch_plan(self.rng))
                self.step_in_epoch = 0
                task.reset_carry()
            steps = task.num_steps(self.plan)
            if self.max_steps is not None:
                stop = min(steps, self.step_in_epoch + self.max_steps - self.step_count)
            else:
                stop = steps
            first = self.step_in_epoch
            bar = self._bar(steps)
            items = 0
            start = time.perf_counter()
            try:
                while self.step_in_epoch < stop:
                    loss, grads, n = task.step(self.plan, self.step_in_epoch)
                    self._update(grads)
                    loss = float(loss)
                    self.history["loss"].append(loss)
                    self.step_in_epoch += 1
                    self.step_count += 1
                    items += n
                    if bar is not None:
                        bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
                        bar.update(n)
                    if self.on_step is not None:
                        self.on_step(self, loss)
                    if (self.checkpoint_every and self.checkpoint_dir is not None
                            and self.step_count % self.checkpoint_every == 0 and self.step_in_epoch < steps):
                        self.save_checkpoint()
            finally:
                if bar is not None:
                    bar.close()
            seconds = time.perf_counter() - start
            if self.step_in_epoch < steps:
                break  # max_steps reached inside the epoch
            self._end_epoch(steps, first, items, seconds)
        if self.plot_path is not None and self.history["epochs"]:
            _logs.plot_learning_curve(self.history, self.plot_path, title=self._title())
        return self.history

    def _bar(self, steps):
        if not self._show_progress():
            return None
        from tqdm.auto import tqdm

        total, done = self.task.epoch_items(self.plan), self.task.items_before(self.plan, self.step_in_epoch)
        return tqdm(total=total, initial=done, unit=self.task.unit.rstrip("s") or "item", unit_scale=True,
                    leave=False, desc=f"epoch {self.epoch + 1}/{self.num_epochs}", file=sys.stderr,
                    dynamic_ncols=True)

    def _end_epoch(self, steps, first, items, seconds):
        self.epoch += 1
        self.plan = None
        if self.lr_decay != 1.0:
            for config in self.optim_configs.values():
                if "learning_rate" in config:
                    config["learning_rate"] *= self.lr_decay
        start = time.perf_counter()
        metrics = self.task.evaluate()
        eval_seconds = time.perf_counter() - start
        losses = self.history["loss"][len(self.history["loss"]) - steps:]
        record = {
            "epoch": self.epoch,
            "steps": steps,
            "train_loss": float(np.mean(losses)) if losses else math.nan,
            **metrics,
            "train_seconds": seconds,
            "eval_seconds": eval_seconds,
            "seconds": seconds + eval_seconds,
            "items": items,
            "items_per_second": items / seconds if seconds > 0 else math.nan,
            "resumed_mid_epoch": first > 0,
        }
        self.history["epochs"].append(record)
        self.history["metric_keys"] = list(metrics)
        if self.checkpoint_dir is not None:
            self.save_checkpoint()
        if self.log_path is not None:
            self.write_log()
        if self.on_epoch is not None:
            self.on_epoch(self, record)

    def _title(self):
        config = self.task.config()
        return " ".join(str(config[k]) for k in ("model", "cell_type", "dataset") if k in config)

    def write_log(self, path=None, extra=None):
        """Writes the JSON log: the configuration, the history (per-step losses, per-epoch records) and
        ``extra`` (a dict of more JSON-able entries)."""
        path = path or self.log_path
        _logs.write_json(path, {"config": self.config(), "epochs_done": self.epoch, "steps_done": self.step_count,
                                "resumed_from": self.resumed_from, "history": self.history, **(extra or {})})
        return path
