"""End-to-end training speed: the same character-model training epoch on each backend and in PyTorch.

    python -m fastrnn.bench.training                  # oracle, numba, cython, torch; 1 epoch each
    python -m fastrnn.bench.training --epochs 2 --json train-bench.json

Every implementation trains the same model from the same initial weights on the same data in the same
order (``fastrnn train charlm``'s defaults: LSTM, hidden 256, embedding 64, 32 streams x 64 characters,
Adam lr 2e-3, gradients clipped to global norm 5, the pydoc corpus), then measures validation bits per
character. The fastrnn backends run ``fastrnn.train.Trainer`` exactly as the command does; PyTorch runs
the same model built from ``nn.Embedding``, ``nn.LSTM`` and ``nn.Linear`` (weights converted from the
fastrnn model; the LSTM's second bias ``b_hh`` held at zero, since fastrnn's LSTM has one bias),
``torch.optim.Adam`` and ``clip_grad_norm_``, with the state carried and detached between chunks. Wall-clock seconds per epoch (training steps, then validation) are taken with
``time.perf_counter`` around the same loop for each; the first epoch includes any compilation
(Numba loads cached kernels), so with ``--epochs 2`` or more the table leaves it out. Run it with
nothing else running.
"""

import argparse
import json
import math
import sys
import time

import numpy as np

__all__ = ["run", "main"]

CONFIG = dict(hidden=256, embed=64, batch_size=32, seq_len=64, lr=2e-3, clip=5.0, seed=0)


def _corpus(text=None):
    from ..data.text import load_corpus

    return load_corpus(text)


def _model(corpus, cfg):
    from ..models import CharLM

    return CharLM(corpus["chars"], embed_dim=cfg["embed"], hidden_dim=cfg["hidden"], cell_type="lstm",
                  dtype=np.float32, seed=cfg["seed"])


def _fastrnn(backend, corpus, cfg, epochs):
    from .. import use_backend
    from ..train.tasks import CharLMTask
    from ..train.trainer import Trainer

    with use_backend(backend):
        model = _model(corpus, cfg)
        task = CharLMTask(model, corpus, batch_size=cfg["batch_size"], seq_len=cfg["seq_len"])
        trainer = Trainer(task, update_rule="adam", optim_config={"learning_rate": cfg["lr"]}, num_epochs=epochs,
                          clip_norm=cfg["clip"], seed=cfg["seed"], progress=False)
        trainer.train()
    return [{"train_seconds": r["train_seconds"], "eval_seconds": r["eval_seconds"], "steps": r["steps"],
             "val_bits_per_char": r["val_bits_per_char"], "train_loss": r["train_loss"]}
            for r in trainer.history["epochs"]]


def _torch(corpus, cfg, epochs, threads):
    import torch

    from ..interop.torch import to_torch_layout
    from ..train.tasks import CharLMTask

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg["seed"])
    reference = _model(corpus, cfg)  # the same initial weights as the fastrnn runs
    p = reference.params
    V, E, H = len(reference.chars), cfg["embed"], cfg["hidden"]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, E)
            self.lstm = torch.nn.LSTM(E, H, batch_first=True)
            self.out = torch.nn.Linear(H, V)

        def forward(self, x, state):
            h, state = self.lstm(self.embed(x), state)
            return self.out(h), state

    net = Net()
    w_ih, w_hh, b_ih, b_hh = to_torch_layout(p["Wx"], p["Wh"], p["b"], "lstm")
    with torch.no_grad():
        net.embed.weight.copy_(torch.from_numpy(p["W_embed"]))
        for name, value in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih),
                            ("bias_hh_l0", b_hh)):
            getattr(net.lstm, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
        net.out.weight.copy_(torch.from_numpy(np.ascontiguousarray(p["W_vocab"].T)))
        net.out.bias.copy_(torch.from_numpy(p["b_vocab"]))
    # PyTorch's LSTM has two biases (b_ih + b_hh) where fastrnn has one b; Adam would move their sum twice as
    # fast. Keep b_hh at zero, untrained, so that both train exactly the same model.
    net.lstm.bias_hh_l0.requires_grad_(False)
    trained = [q for q in net.parameters() if q.requires_grad]
    optimizer = torch.optim.Adam(trained, lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
    task = CharLMTask(reference, corpus, batch_size=cfg["batch_size"], seq_len=cfg["seq_len"])  # the same streams
    rng = np.random.default_rng(cfg["seed"])
    records = []
    for _ in range(epochs):
        plan = task.epoch_plan(rng)
        x_all, y_all = (torch.from_numpy(a) for a in task._streams(int(plan[0])))
        steps = task.num_steps(plan)
        T = cfg["seq_len"]
        start = time.perf_counter()
        state, losses = None, []
        net.train()
        for k in range(steps):
            x, y = x_all[:, k * T:(k + 1) * T], y_all[:, k * T:(k + 1) * T]
            scores, state = net(x, state)
            state = tuple(s.detach() for s in state)
            loss = torch.nn.functional.cross_entropy(scores.reshape(-1, V), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, cfg["clip"])
            optimizer.step()
            losses.append(loss.item())
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        net.eval()
        ids = torch.from_numpy(task.val_ids)
        N = min(cfg["batch_size"], len(ids) - 1)
        S = (len(ids) - 1) // N
        xv, yv = ids[:N * S].reshape(N, S), ids[1:N * S + 1].reshape(N, S)
        total, state = 0.0, None
        with torch.no_grad():
            for s in range(0, S, task.eval_chunk):
                scores, state = net(xv[:, s:s + task.eval_chunk], state)
                total += float(torch.nn.functional.cross_entropy(
                    scores.reshape(-1, V), yv[:, s:s + task.eval_chunk].reshape(-1), reduction="sum"))
        records.append({"train_seconds": train_seconds, "eval_seconds": time.perf_counter() - start,
                        "steps": steps, "val_bits_per_char": total / (N * S) / math.log(2),
                        "train_loss": float(np.mean(losses))})
    return records


def run(implementations=None, epochs=1, threads=None, progress=print, config=None, text=None):
    """Trains one run per implementation; returns ``{"config", "cpu", "results": {name: [epoch records]}}``.

    ``config`` overrides entries of ``CONFIG`` (hidden, embed, batch_size, seq_len, lr, clip, seed);
    ``text`` is a UTF-8 file to train on instead of the default corpus.
    """
    from .. import available_backends
    from . import machine

    if implementations is None:
        implementations = ["numpy"] + [b for b in ("numba", "cython") if b in available_backends()]
        try:
            import torch  # noqa: F401
            implementations.append("torch")
        except ImportError:
            pass
    limiter = None
    if threads:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=threads, user_api="blas")
    cfg = dict(CONFIG, **(config or {}))
    corpus = _corpus(text)
    results = {}
    try:
        for name in implementations:
            if name == "torch":
                results[name] = _torch(corpus, cfg, epochs, threads)
            elif name in available_backends():
                results[name] = _fastrnn(name, corpus, cfg, epochs)
            else:
                raise ValueError(f"unknown implementation {name!r}; choose from {', '.join(available_backends())}, torch")
            if progress:
                last = results[name][-1]
                progress(f"  {name}: {last['train_seconds']:.1f} s training + {last['eval_seconds']:.1f} s validation "
                         f"(epoch {len(results[name])}), val {last['val_bits_per_char']:.3f} bits/char")
    finally:
        if limiter is not None:
            limiter.unregister()
    return {"config": dict(cfg, epochs=epochs, threads=threads, corpus=corpus["name"],
                           train_chars=len(corpus["train_text"])),
            "cpu": machine.describe()["cpu"]["model"], "results": results}


def table(report):
    """A Markdown table: seconds per epoch (training + validation) and the speed-up over the oracle.

    With two or more epochs the first is left out of the mean (it includes one-time costs: Numba's
    kernel loading, first touches of memory)."""
    results = report["results"]

    def per_epoch(records):  # after the first epoch when there are more: steady state, no one-time costs
        records = records[1:] if len(records) > 1 else records
        return float(np.mean([r["train_seconds"] + r["eval_seconds"] for r in records]))

    base = per_epoch(results["numpy"]) if "numpy" in results else None
    lines = ["| implementation | s / epoch (train + validation) | x oracle | val bits/char after the last epoch |",
             "|---|---|---|---|"]
    for name, records in results.items():
        seconds = per_epoch(records)
        ratio = f"{base / seconds:.2f}x" if base else "-"
        label = "numpy (oracle)" if name == "numpy" else name
        lines.append(f"| {label} | {seconds:.1f} | {ratio} | {records[-1]['val_bits_per_char']:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastrnn.bench.training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--implementations", help="comma-separated: numpy,numba,cython,torch (default: all available)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per implementation (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS and torch threads")
    parser.add_argument("--json", metavar="FILE", help="write every epoch record as JSON")
    args = parser.parse_args(argv)
    names = None if not args.implementations else [n.strip() for n in args.implementations.split(",") if n.strip()]
    print(f"char-LM training, {CONFIG}, {args.epochs} epoch(s) per implementation", flush=True)
    report = run(names, epochs=args.epochs, threads=args.threads,
                 progress=lambda line: print(line, flush=True))
    print(f"CPU: {report['cpu']}")
    print(table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
