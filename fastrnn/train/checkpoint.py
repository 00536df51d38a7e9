"""Training checkpoints in HDF5: everything that decides the rest of a run, written atomically.

A checkpoint holds the model's parameters, the update rule's per-parameter state (Adam's moments and
step count, ...), the trainer's random generator state (and NumPy's global one when the data sampling
uses it), the epoch, the step, the position inside the epoch with that epoch's data order, the state
a model carries from one step to the next (a character model's hidden state), the run's
configuration and its history. Loading one and training on gives the bit-identical result of a run
that was never interrupted.

Layout (one HDF5 file; scalars are JSON so that ints stay ints and floats round-trip exactly)::

    /                 attrs: format, format_version, fastrnn_version
    /state            JSON: epoch, step, position in the epoch, update rule, RNG state, config, history
    /params/<name>    the parameters
    /optim/<name>/    attrs: scalars (JSON: learning_rate, t, ...); datasets: arrays (m, v, ...)
    /plan             the current epoch's data order (absent between epochs)
    /carry/<name>     carried model state (absent when there is none)
    /np_random        NumPy's global RandomState (absent unless the run samples with it)

``save`` writes a temporary file in the same directory, flushes it to disk and renames it over the
old checkpoint, so a run killed at any moment leaves the last complete checkpoint as it was.
"""

import json
import os

import numpy as np

from .. import _output
from .._version import __version__

__all__ = ["CheckpointError", "save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "fastrnn-checkpoint"
FORMAT_VERSION = 1

_STATE_KEYS = ("epoch", "step", "step_in_epoch", "update_rule", "rng", "config", "history")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: not HDF5, truncated, or not a fastrnn checkpoint."""


def _scalars_and_arrays(name, config):
    scalars, arrays = {}, {}
    for key, value in config.items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
        elif isinstance(value, np.generic):
            scalars[key] = value.item()
        elif value is None or isinstance(value, (bool, int, float, str)):
            scalars[key] = value
        else:
            raise TypeError(f"cannot checkpoint optimizer setting {key!r} of parameter {name!r}: "
                            f"{type(value).__name__} is neither a number, a string nor an array")
    return scalars, arrays


def _write(f, state):
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["fastrnn_version"] = __version__
    # a dataset, not an attribute: attributes are limited to 64 kB and the history grows with the run
    f.create_dataset("state", data=json.dumps({k: state[k] for k in _STATE_KEYS}))
    params = f.create_group("params")
    for name, value in state["params"].items():
        params[name] = np.asarray(value)
    optim = f.create_group("optim")
    for name, config in state["optim"].items():
        group = optim.create_group(name)
        scalars, arrays = _scalars_and_arrays(name, config)
        group.attrs["scalars"] = json.dumps(scalars)
        for key, value in arrays.items():
            group[key] = value
    if state.get("plan") is not None:
        f["plan"] = np.asarray(state["plan"])
    carry = f.create_group("carry")
    for name, value in (state.get("carry") or {}).items():
        carry[name] = np.asarray(value)
    if state.get("np_random") is not None:
        kind, keys, pos, has_gauss, cached = state["np_random"]
        group = f.create_group("np_random")
        group["keys"] = np.asarray(keys)
        group.attrs["meta"] = json.dumps({"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                                          "cached_gaussian": float(cached)})


def _fsync_directory(directory):
    if os.name != "posix":
        return  # Windows cannot open a directory; os.replace there is as durable as it gets
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(path, state):
    """Writes ``state`` (a dict as ``load`` returns it) to ``path`` atomically.

    The file appears under its name only once it is complete and on disk; on any error (a full disk,
    an interrupt) the temporary file is removed and an older checkpoint at ``path`` is untouched.
    """
    import h5py

    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    with _output.replaced(path) as tmp:
        with h5py.File(tmp, "w") as f:
            _write(f, state)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    _fsync_directory(directory)


def _read(f):
    raw = f["state"][()]
    state = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise KeyError(f"state lacks {', '.join(missing)}")
    state["params"] = {name: np.asarray(d) for name, d in f["params"].items()}
    state["optim"] = {}
    for name, group in f["optim"].items():
        config = json.loads(group.attrs["scalars"])
        config.update({key: np.asarray(d) for key, d in group.items()})
        state["optim"][name] = config
    state["plan"] = np.asarray(f["plan"]) if "plan" in f else None
    state["carry"] = {name: np.asarray(d) for name, d in f["carry"].items()} if "carry" in f else {}
    state["np_random"] = None
    if "np_random" in f:
        meta = json.loads(f["np_random"].attrs["meta"])
        state["np_random"] = (meta["kind"], np.asarray(f["np_random"]["keys"]), meta["pos"], meta["has_gauss"],
                              meta["cached_gaussian"])
    return state


def load(path):
    """Reads a checkpoint written by ``save``.

    Raises FileNotFoundError when there is no such file and CheckpointError, naming the file, when
    it is not a complete fastrnn checkpoint (truncated, corrupt, another kind of HDF5 file, or
    written by a newer format).
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path!r} is not a readable HDF5 file (truncated or corrupt?): {exc}") \
            from None
    with f:
        kind = f.attrs.get("format")
        if isinstance(kind, bytes):
            kind = kind.decode()
        if kind != FORMAT:
            raise CheckpointError(f"{path!r} is an HDF5 file but not a fastrnn checkpoint (no format={FORMAT!r})")
        version = int(f.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise CheckpointError(f"checkpoint {path!r} has format version {version}; this fastrnn "
                                  f"({__version__}) reads version {FORMAT_VERSION}")
        try:
            return _read(f)
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise CheckpointError(f"checkpoint {path!r} is incomplete or corrupt: {exc}") from None
