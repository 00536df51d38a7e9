"""CaptioningSolver: trains a CaptioningRNN by minibatch gradient descent (cs231n's solver).

It keeps cs231n's signature and behaviour (minibatches drawn with replacement from NumPy's global random
state, ``len // batch_size`` iterations an epoch, learning-rate decay after each epoch, the same printed
lines) and runs on ``fastrnn.train.Trainer``, whose features it offers through optional keywords.
"""

import math

from ..data.coco import sample_coco_minibatch
from .tasks import CaptionTask
from .trainer import Trainer, resolve_update_rule

__all__ = ["CaptioningSolver"]

_DEFAULTS = dict(update_rule="sgd", optim_config=None, lr_decay=1.0, batch_size=100, num_epochs=10,
                 print_every=10, verbose=True)
# fastrnn's additions; all optional, and all off by default, so a cs231n notebook sees no difference
_EXTRAS = dict(clip_value=None, clip_norm=None, checkpoint_dir=None, checkpoint_every=None, resume=False,
               log_path=None, plot_path=None, progress=False, validate=False, val_captions=1000, bleu_images=500,
               beam_size=1)


class CaptioningSolver:
    """Trains ``model`` on ``data`` (a dict as returned by ``fastrnn.coco.load_coco_data``).

        solver = CaptioningSolver(model, data, update_rule="adam",
                                  optim_config={"learning_rate": 5e-3}, num_epochs=50)
        solver.train()
        solver.loss_history   # one loss per iteration

    Keyword arguments (cs231n's): ``update_rule`` (a name in ``fastrnn.optim`` or a callable
    with the same signature), ``optim_config``, ``lr_decay`` (applied to every parameter's
    learning rate after each epoch), ``batch_size``, ``num_epochs``, ``print_every``,
    ``verbose``.

    fastrnn's optional additions (see ``fastrnn.train.Trainer``): ``clip_value`` / ``clip_norm``
    (gradient clipping by value / by global norm), ``checkpoint_dir`` (an HDF5 checkpoint after every
    epoch, and every ``checkpoint_every`` iterations), ``resume`` (continue from that checkpoint:
    parameters, optimizer state, NumPy's random state, iteration; the rest of the run is then
    bit-identical to an uninterrupted one), ``log_path`` (JSON log), ``plot_path`` (PNG learning
    curve), ``progress`` (a progress bar), ``validate`` (validation loss and BLEU-1..4 after every epoch
    on ``val_captions`` captions and ``bleu_images`` images, greedy or with beam search of ``beam_size``).
    Any other keyword is a ValueError.
    """

    def __init__(self, model, data, **kwargs):
        unknown = sorted(set(kwargs) - set(_DEFAULTS) - set(_EXTRAS))
        if unknown:
            raise ValueError(f"Unrecognized arguments {', '.join(unknown)}")
        settings = {**_DEFAULTS, **_EXTRAS, **kwargs}
        self.model = model
        self.data = data
        self.optim_config = dict(settings["optim_config"] or {})
        self.lr_decay = settings["lr_decay"]
        self.batch_size = int(settings["batch_size"])
        self.num_epochs = settings["num_epochs"]
        self.print_every = settings["print_every"]
        self.verbose = settings["verbose"]
        self.update_rule = resolve_update_rule(settings["update_rule"])
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        self._extras = {k: settings[k] for k in _EXTRAS}
        self._reset()

    def _reset(self):
        extras = self._extras
        self.task = CaptionTask(self.model, self.data, batch_size=self.batch_size, sampling="cs231n",
                                validate=extras["validate"], val_captions=extras["val_captions"],
                                bleu_images=extras["bleu_images"], beam_size=extras["beam_size"])
        self.iterations_per_epoch = self.task.num_steps(None)
        self.num_iterations = int(self.num_epochs * self.iterations_per_epoch)
        self.trainer = Trainer(
            self.task, update_rule=self.update_rule, optim_config=self.optim_config, lr_decay=self.lr_decay,
            num_epochs=math.ceil(self.num_epochs), max_steps=self.num_iterations, clip_value=extras["clip_value"],
            clip_norm=extras["clip_norm"], checkpoint_dir=extras["checkpoint_dir"],
            checkpoint_every=extras["checkpoint_every"], resume=extras["resume"], log_path=extras["log_path"],
            plot_path=extras["plot_path"], progress=extras["progress"], on_step=self._on_step,
            on_epoch=self._on_epoch)

    # cs231n's attributes, kept up to date by the trainer
    @property
    def epoch(self):
        return self.trainer.epoch

    @property
    def loss_history(self):
        return self.trainer.history["loss"]

    @property
    def optim_configs(self):
        return self.trainer.optim_configs

    @property
    def history(self):
        """The trainer's history: per-iteration losses and one record per epoch (with validation if any)."""
        return self.trainer.history

    def _on_step(self, trainer, loss):
        t = trainer.step_count - 1
        if self.verbose and t % self.print_every == 0:
            print(f"(Iteration {t + 1} / {self.num_iterations}) loss: {loss:f}")

    def _on_epoch(self, trainer, record):
        if self.verbose:
            extra = "".join(f", {k[4:]}: {record[k]:f}" for k in trainer.history.get("metric_keys", ()))
            print(f"(Epoch {trainer.epoch} / {self.num_epochs}) mean loss: {record['train_loss']:f}{extra}")

    def _step(self):
        """One update on a minibatch drawn as cs231n draws it (outside ``train``'s bookkeeping)."""
        captions, features, _ = sample_coco_minibatch(self.data, batch_size=self.batch_size, split="train")
        loss, grads = self.model.loss(features, captions)
        self.loss_history.append(float(loss))
        self.trainer._update(grads)

    def train(self):
        """Runs ``num_epochs`` epochs of ``len(train_captions) // batch_size`` iterations each.

        After ``resume`` it runs only what is left. Returns the loss history.
        """
        self.trainer.train()
        return self.loss_history

    def check_bleu(self, split="val", num_images=None):
        """Corpus BLEU-1..4 of the model's captions for ``split``'s images (a dict, 0..1 scale)."""
        return self.task.bleu(split, num_images)
