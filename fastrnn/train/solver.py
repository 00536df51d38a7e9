"""CaptioningSolver: trains a CaptioningRNN by minibatch gradient descent (cs231n's solver)."""

import numpy as np

from . import optim
from ..data.coco import sample_coco_minibatch

__all__ = ["CaptioningSolver"]

_DEFAULTS = dict(update_rule="sgd", optim_config=None, lr_decay=1.0, batch_size=100, num_epochs=10,
                 print_every=10, verbose=True)


class CaptioningSolver:
    """Trains ``model`` on ``data`` (a dict as returned by ``fastrnn.coco.load_coco_data``).

        solver = CaptioningSolver(model, data, update_rule="adam",
                                  optim_config={"learning_rate": 5e-3}, num_epochs=50)
        solver.train()
        solver.loss_history   # one loss per iteration

    Keyword arguments (cs231n's): ``update_rule`` (a name in ``fastrnn.optim`` or a callable
    with the same signature), ``optim_config``, ``lr_decay`` (applied to every parameter's
    learning rate after each epoch), ``batch_size``, ``num_epochs``, ``print_every``,
    ``verbose``. Any other keyword is a ValueError.
    """

    def __init__(self, model, data, **kwargs):
        unknown = sorted(set(kwargs) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"Unrecognized arguments {', '.join(unknown)}")
        settings = {**_DEFAULTS, **kwargs}
        self.model = model
        self.data = data
        self.optim_config = dict(settings["optim_config"] or {})
        self.lr_decay = settings["lr_decay"]
        self.batch_size = int(settings["batch_size"])
        self.num_epochs = settings["num_epochs"]
        self.print_every = settings["print_every"]
        self.verbose = settings["verbose"]
        rule = settings["update_rule"]
        if callable(rule):
            self.update_rule = rule
        elif isinstance(rule, str) and rule in optim.__all__:
            self.update_rule = getattr(optim, rule)
        else:
            raise ValueError(f'Invalid update_rule "{rule}"; expected one of {optim.__all__} or a callable')
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        self._reset()

    def _reset(self):
        self.epoch = 0
        self.loss_history = []
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}

    def _step(self):
        captions, features, _ = sample_coco_minibatch(self.data, batch_size=self.batch_size, split="train")
        loss, grads = self.model.loss(features, captions)
        self.loss_history.append(float(loss))
        for name, w in self.model.params.items():
            next_w, self.optim_configs[name] = self.update_rule(w, grads[name], self.optim_configs[name])
            self.model.params[name] = next_w

    def train(self):
        """Runs ``num_epochs`` epochs of ``len(train_captions) // batch_size`` iterations each."""
        num_train = self.data["train_captions"].shape[0]
        iterations_per_epoch = max(num_train // self.batch_size, 1)
        num_iterations = int(self.num_epochs * iterations_per_epoch)
        for t in range(num_iterations):
            self._step()
            if self.verbose and t % self.print_every == 0:
                print(f"(Iteration {t + 1} / {num_iterations}) loss: {self.loss_history[-1]:f}")
            if (t + 1) % iterations_per_epoch == 0:
                self.epoch += 1
                recent = self.loss_history[-iterations_per_epoch:]
                if self.verbose:
                    print(f"(Epoch {self.epoch} / {self.num_epochs}) mean loss: {np.mean(recent):f}")
                for config in self.optim_configs.values():
                    if "learning_rate" in config:
                        config["learning_rate"] *= self.lr_decay
        return self.loss_history
