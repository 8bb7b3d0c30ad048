"""Sequence models (SASRec, GRU4Rec) beside the default, with hindsight and as it streams (issue #3 research).

Session 16 measured a SASRec with a script outside the repository; session 17
could not reproduce its figures once that script was gone. This module keeps the
whole experiment rerunnable. Its figures are indicative: the sequence models are
dense PyTorch research models, not product code. The default's lists always come
from the product (the same steps as :func:`streamreco.evaluation.replay_offline`).

It needs PyTorch, which the product does not: ``pip install torch==2.13.0`` (the
CPU build on this machine's disk). Steps, each writing into ``--cache``:

    python -m bench.research.sequence lists                      # the product's top 200s: 5 groups and the stream
    python -m bench.research.sequence hindsight --model gru --group 0   # one group, 80 epochs on the others
    python -m bench.research.sequence stream --model gru         # refit every 10,000 events on all before
    python -m bench.research.sequence score --model gru          # the tables: alone and blended
    python -m bench.research.sequence cost                       # one event of a GRU served in numpy

``hindsight`` follows :mod:`bench.ceiling`: users dealt into 5 groups by order of
first event; the model learns the other groups' whole streams, is frozen, and
scores each of the group's events from the user's history before it. The blend
is ``default score / its max + w x exp(logit - max logit)`` over both top 200s;
a user's first event keeps the default's list (the newcomers' list).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

FOLDS = 5
#: Items kept per list in the dumps, for the blend.
POOL = 200
#: Sequence length, width, heads, blocks, dropout, batch, learning rate: session 16's settings.
L, D, HEADS, BLOCKS, DROP, BATCH, LR = 200, 64, 2, 2, 0.2, 64, 1e-3
#: Bounds (seconds) of the buckets of the time since the user's previous event.
GAPS = np.array([0, 1, 60, 600, 3600, 86400, 7 * 86400, 30 * 86400])
HINDSIGHT_EPOCHS, FIRST_EPOCHS, LATER_EPOCHS, REFIT_EVERY = 80, 30, 15, 10_000
WEIGHTS = (0.1, 0.2, 0.5, 1.0, 2.0)
CACHE = Path.home() / ".cache" / "streamreco" / "research"


def product_lists(spec, events) -> tuple[np.ndarray, np.ndarray]:
    """The list last published for each event's user before it (top :data:`POOL`, ids and scores),
    as :func:`~streamreco.evaluation.replay_offline` tests it."""
    from streamreco.evaluation import replay_offline

    ids = np.full((len(events), POOL), -1, np.int32)
    scores = np.zeros((len(events), POOL), np.float32)
    rows = iter(range(len(events)))

    def keep(event, shown) -> None:
        row = next(rows)
        ids[row, : len(shown)] = [int(r.item_id) for r in shown]
        scores[row, : len(shown)] = [r.score for r in shown]

    replay_offline(spec, events, tested=keep, listed=POOL)
    return ids, scores


def write_lists(cache: Path) -> None:
    """The product default's lists: for each group with hindsight, and as it streams; and the events."""
    from functools import partial

    from bench.ceiling import folds_of, knowing
    from online_models import DEFAULT_MODEL
    from producers.movielens import load_ratings, to_events

    events = list(to_events(load_ratings()))
    np.savez(cache / "events.npz", user=[int(e.user_id) for e in events], item=[int(e.item_id) for e in events],
             ts=[e.ts for e in events])
    group = folds_of(events, FOLDS)
    for fold in range(FOLDS):
        others = [e for e in events if group[e.user_id] != fold]
        mine = [at for at, e in enumerate(events) if group[e.user_id] == fold]
        ids, scores = product_lists(partial(knowing, DEFAULT_MODEL, others), [events[at] for at in mine])
        np.savez(cache / f"default-group{fold}.npz", index=mine, ids=ids, scores=scores)
        print(f"group {fold}: {report(ids, np.array([int(events[at].item_id) for at in mine]))}", flush=True)
    ids, scores = product_lists(DEFAULT_MODEL, events)
    np.savez(cache / "default-stream.npz", index=np.arange(len(events)), ids=ids, scores=scores)
    print(f"as it streams: {report(ids, np.array([int(e.item_id) for e in events]))}")


def gains(top: np.ndarray, item: np.ndarray) -> np.ndarray:
    """NDCG@10 gain of each event's item in its list (rows of item ids, best first); 0 for a miss.

    >>> gains(np.array([[3, 1, 2], [5, 6, 7]]), np.array([1, 9])).round(3)
    array([0.631, 0.   ])
    """
    hit = top[:, :10] == item[:, None]
    return np.where(hit.any(1), 1 / np.log2(hit.argmax(1) + 2), 0.0)


def report(top: np.ndarray, item: np.ndarray) -> str:
    gain = gains(top, item)
    return f"{(gain > 0).mean():.4f} / {gain.mean():.4f}"


def blend(ids, scores, seq_ids, seq_logits, weight: float) -> np.ndarray:
    """Top 10 of ``default / its max + weight x exp(logit - max)`` per event; the default alone where the
    sequence model has no list (``seq_ids`` row of -1).

    >>> blend(np.array([[1, 2, 3]]), np.array([[2.0, 1.0, 0.5]]), np.array([[3, 4, -1]]), np.array([[0.0, -1, 0]]), 1.0)[0, :4]
    array([3, 1, 2, 4])
    """
    out = np.full((len(ids), 10), -1, np.int64)
    for row in range(len(ids)):
        total: dict[int, float] = {}
        mine = ids[row] >= 0
        top = scores[row][mine].max() if mine.any() else 0.0
        for rank, (item, score) in enumerate(zip(ids[row][mine], scores[row][mine])):
            total[item] = score / top if top > 0 else 1e-6 * (POOL - rank)
        theirs = seq_ids[row] >= 0
        if theirs.any():
            logits = seq_logits[row][theirs]
            for item, share in zip(seq_ids[row][theirs], np.exp(logits - logits.max())):
                total[item] = total.get(item, 0.0) + weight * share
        best = sorted(total.items(), key=lambda entry: -entry[1])[:10]
        out[row, : len(best)] = [item for item, _ in best]
    return out


class Sequences:
    """Each user's items, time-gap buckets and event indexes, in stream order."""

    def __init__(self, cache: Path) -> None:
        events = np.load(cache / "events.npz")
        self.user, self.item, ts = events["user"], events["item"], events["ts"]
        self.n_items = int(self.item.max()) + 1  # 0 pads
        self.order = list(dict.fromkeys(self.user.tolist()))
        indexes: dict[int, list[int]] = {u: [] for u in self.order}
        for at, u in enumerate(self.user.tolist()):
            indexes[u].append(at)
        self.events = {u: np.array(at) for u, at in indexes.items()}  # each user's event indexes
        self.position = {at: (u, p) for u, ats in self.events.items() for p, at in enumerate(ats)}
        self.items = {u: self.item[at] for u, at in self.events.items()}
        self.gaps = {u: 1 + np.searchsorted(GAPS, np.diff(ts[at], prepend=ts[at][0]), side="right") - 1
                     for u, at in self.events.items()}

    def windows(self, users, before: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(items, gaps, next items) windows of up to :data:`L` over events before ``before``, overlapping by half."""
        out = []
        for u in users:
            cut = int(np.searchsorted(self.events[u], before))
            items, gaps = self.items[u][:cut], self.gaps[u][:cut]
            end = len(items) - 1
            while end >= 1:
                start = max(0, end - L)
                out.append((items[start:end], gaps[start:end], items[start + 1 : end + 1]))
                end = 0 if start == 0 else end - L // 2
        return out


def sequence_model(kind: str, n_items: int):
    """A SASRec (causal pre-norm transformer) or GRU4Rec over item and gap embeddings, tied output embeddings."""
    import torch
    from torch import nn

    class NextItem(nn.Module):
        left_padded = kind == "sasrec"

        def __init__(self) -> None:
            super().__init__()
            self.items = nn.Embedding(n_items, D, padding_idx=0)
            self.gaps = nn.Embedding(len(GAPS) + 1, D, padding_idx=0)
            self.drop = nn.Dropout(DROP)
            self.norm = nn.LayerNorm(D)
            nn.init.normal_(self.items.weight, std=0.05)
            if kind == "gru":
                self.gru = nn.GRU(D, D, batch_first=True)
            else:
                self.positions = nn.Embedding(L, D)
                self.blocks = nn.ModuleList(
                    nn.TransformerEncoderLayer(D, HEADS, 2 * D, DROP, batch_first=True, norm_first=True)
                    for _ in range(BLOCKS))

        def forward(self, items, gaps):
            """Hidden state at every position; ``items`` padded with 0 on the side :attr:`left_padded` says."""
            if kind == "gru":
                hidden, _ = self.gru(self.drop(self.items(items) + self.gaps(gaps)))
                return self.norm(self.drop(hidden))
            t = items.shape[1]
            positions = self.positions(torch.arange(L - t, L))  # the last item at position L - 1
            hidden = self.drop(self.items(items) * D**0.5 + positions + self.gaps(gaps))
            real = items != 0
            allowed = torch.ones(t, t, dtype=torch.bool).tril() & (real.unsqueeze(1) | torch.eye(t, dtype=torch.bool))
            mask = (~allowed).repeat_interleave(HEADS, 0)
            for block in self.blocks:
                hidden = block(hidden, src_mask=mask)
            return self.norm(hidden)

        def logits(self, hidden):
            return hidden @ self.items.weight.T

    return NextItem()


def _padded(rows: list[np.ndarray], left: bool):
    """Rows of ids padded with 0 to the longest: on the left for a transformer (the last item always at the
    last position), on the right for a GRU (which reads the real items first)."""
    import torch

    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width), np.int64)
    for at, row in enumerate(rows):
        if left:
            out[at, width - len(row) :] = row
        else:
            out[at, : len(row)] = row
    return torch.from_numpy(out)


def train(model, optimiser, windows: list, epochs: int, rng: np.random.Generator) -> float:
    """``epochs`` of full-softmax next-item cross-entropy over ``windows``, batches of like length; the last loss."""
    import torch.nn.functional as F

    model.train()
    lengths = np.array([len(w[0]) for w in windows])
    loss = float("nan")
    for _ in range(epochs):
        order = rng.permutation(len(windows))
        order = order[np.argsort(lengths[order] + rng.random(len(order)) * 40, kind="stable")]
        batches = [order[k : k + BATCH] for k in range(0, len(order), BATCH)]
        rng.shuffle(batches)
        for batch in batches:
            items, gaps, targets = (_padded([windows[k][part] for k in batch], model.left_padded) for part in range(3))
            step = F.cross_entropy(model.logits(model(items, gaps)).flatten(0, 1), targets.flatten(), ignore_index=0)
            optimiser.zero_grad()
            step.backward()
            optimiser.step()
            loss = step.item()
    return loss


def predict(model, data: Sequences, rows: list[tuple[int, int]], known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top :data:`POOL` (ids, logits) for each (user, position) from the history before it, leaving out the
    user's seen items and items not in ``known``; -1 where a user has no history yet."""
    import torch

    model.eval()
    ids = np.full((len(rows), POOL), -1, np.int64)
    logits = np.full((len(rows), POOL), -np.inf, np.float32)
    queue = sorted((k for k, (_, p) in enumerate(rows) if p > 0), key=lambda k: min(rows[k][1], L))
    with torch.no_grad():
        for start in range(0, len(queue), 256):
            chunk = queue[start : start + 256]
            history = [(data.items[rows[k][0]][: rows[k][1]], data.gaps[rows[k][0]][: rows[k][1]]) for k in chunk]
            left = model.left_padded
            hidden = model(_padded([h[0][-L:] for h in history], left), _padded([h[1][-L:] for h in history], left))
            last = torch.tensor([hidden.shape[1] - 1 if left else min(len(h[0]), L) - 1 for h in history])
            scores = model.logits(hidden[torch.arange(len(chunk)), last])
            scores[:, ~torch.from_numpy(known)] = -torch.inf
            for at, (items, _) in enumerate(history):
                scores[at, torch.from_numpy(items)] = -torch.inf
            top = scores.topk(POOL, dim=1)
            ids[chunk], logits[chunk] = top.indices.numpy(), top.values.numpy()
    return ids, logits


def _fresh(kind: str, data: Sequences, seed: int):
    import torch

    torch.manual_seed(seed)
    model = sequence_model(kind, data.n_items)
    return model, torch.optim.Adam(model.parameters(), lr=LR), np.random.default_rng(seed)


def hindsight(kind: str, fold: int, cache: Path, epochs: int = HINDSIGHT_EPOCHS) -> None:
    """The model taught the other groups' whole streams, then frozen, for one group's events."""
    data = Sequences(cache)
    index = np.load(cache / f"default-group{fold}.npz")["index"]  # the group's events, as bench.ceiling deals them
    mine = set(data.user[index].tolist())
    others = [u for u in data.order if u not in mine]
    model, optimiser, rng = _fresh(kind, data, fold)
    known = np.zeros(data.n_items, bool)
    known[np.concatenate([data.items[u] for u in others])] = True
    started = time.perf_counter()
    loss = train(model, optimiser, data.windows(others, len(data.item)), epochs, rng)
    ids, logits = predict(model, data, [data.position[at] for at in index], known)
    np.savez(cache / f"{kind}-group{fold}.npz", ids=ids, logits=logits)
    print(f"{kind}, group {fold}: loss {loss:.3f}, {time.perf_counter() - started:.0f} s")


def stream(kind: str, cache: Path, epochs: tuple[int, int] = (FIRST_EPOCHS, LATER_EPOCHS)) -> None:
    """The model refit every :data:`REFIT_EVERY` events on all events before, warm-started, frozen in between."""
    data = Sequences(cache)
    model, optimiser, rng = _fresh(kind, data, 0)
    n = len(data.item)
    ids = np.full((n, POOL), -1, np.int64)
    logits = np.full((n, POOL), -np.inf, np.float32)
    started = time.perf_counter()
    for boundary in range(REFIT_EVERY, n, REFIT_EVERY):
        loss = train(model, optimiser, data.windows(data.order, boundary), epochs[boundary > REFIT_EVERY], rng)
        known = np.zeros(data.n_items, bool)
        known[data.item[:boundary]] = True
        span = range(boundary, min(boundary + REFIT_EVERY, n))
        ids[span.start : span.stop], logits[span.start : span.stop] = predict(
            model, data, [data.position[at] for at in span], known)
        print(f"refit at {boundary}: loss {loss:.3f}, {time.perf_counter() - started:.0f} s", flush=True)
    np.savez(cache / f"{kind}-stream.npz", ids=ids, logits=logits)


def score(kind: str, cache: Path) -> None:
    """HR@10 / NDCG@10 of the default, the model alone and the blends: every group, all groups, the stream."""
    item = np.load(cache / "events.npz")["item"]

    def rows(default, model) -> dict[str, np.ndarray]:
        truth = item[default["index"]]
        alone = np.where(model["ids"][:, :1] < 0, default["ids"][:, :10], model["ids"][:, :10])
        out = {"default": gains(default["ids"], truth), f"{kind} alone": gains(alone, truth)}
        for weight in WEIGHTS:
            top = blend(default["ids"], default["scores"], model["ids"], model["logits"], weight)
            out[f"default + {weight} x {kind}"] = gains(top, truth)
        return out

    def line(name: str, gain: np.ndarray) -> str:
        return f"{name}: {(gain > 0).mean():.4f} / {gain.mean():.4f}"

    groups = [rows(np.load(cache / f"default-group{g}.npz"), np.load(cache / f"{kind}-group{g}.npz"))
              for g in range(FOLDS) if (cache / f"{kind}-group{g}.npz").exists()]
    for g, by_name in enumerate(groups):
        print(f"with hindsight, group {g}:", "; ".join(line(name, gain) for name, gain in by_name.items()))
    if groups:
        print(f"with hindsight, groups 0-{len(groups) - 1}:",
              "; ".join(line(name, np.concatenate([r[name] for r in groups])) for name in groups[0]))
    if (cache / f"{kind}-stream.npz").exists():
        by_name = rows(np.load(cache / "default-stream.npz"), np.load(cache / f"{kind}-stream.npz"))
        half = len(item) // 2
        for name, gain in by_name.items():
            print(f"as it streams, {line(name, gain)}; first half {line('', gain[:half])[2:]}; "
                  f"last half {line('', gain[half:])[2:]}")


def cost(events: int = 20_000) -> None:
    """Microseconds per event of a GRU served in numpy: one step on the user's vector, layer norm, scores, top 10.
    Random weights: the cost does not depend on their values."""
    rng = np.random.default_rng(0)
    for n_items, pool in [(1682, None), (1682, 200), (100_000, None), (1_000_000, 200)]:
        items = rng.standard_normal((n_items, D), dtype=np.float32)
        w_input, w_hidden = (rng.standard_normal((3 * D, D), dtype=np.float32) for _ in range(2))
        candidates = rng.choice(n_items, pool, replace=False) if pool else None
        runs = []
        for _ in range(3):
            hidden = np.zeros(D, np.float32)
            count = events if pool or n_items <= 10_000 else events // 20
            started = time.perf_counter()
            for k in range(count):
                x, h = w_input @ items[k % n_items], w_hidden @ hidden
                reset = 1 / (1 + np.exp(-(x[:D] + h[:D])))
                update = 1 / (1 + np.exp(-(x[D : 2 * D] + h[D : 2 * D])))
                hidden = (1 - update) * np.tanh(x[2 * D :] + reset * h[2 * D :]) + update * hidden
                user = (hidden - hidden.mean()) / np.sqrt(hidden.var() + 1e-5)
                scores = (items if candidates is None else items[candidates]) @ user
                top = np.argpartition(-scores, 10)[:10]
                top[np.argsort(-scores[top])]
            runs.append((time.perf_counter() - started) / count * 1e6)
        where = "whole catalogue" if pool is None else f"a pool of {pool}"
        print(f"{n_items:>9} items, {where}: median {sorted(runs)[1]:.1f} us per event")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.research.sequence", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["lists", "hindsight", "stream", "score", "cost"])
    parser.add_argument("--model", choices=["gru", "sasrec"], default="gru")
    parser.add_argument("--group", type=int, choices=range(FOLDS), help="for hindsight (default: every group)")
    parser.add_argument("--epochs", type=int, help="epochs of every training (a quick check; default: as documented)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"where the steps' arrays go (default {CACHE})")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.step in ("hindsight", "stream"):
        import torch

        torch.set_num_threads(args.threads)
    if args.step == "lists":
        write_lists(args.cache)
    elif args.step == "hindsight":
        for fold in [args.group] if args.group is not None else range(FOLDS):
            hindsight(args.model, fold, args.cache, args.epochs or HINDSIGHT_EPOCHS)
    elif args.step == "stream":
        stream(args.model, args.cache, (args.epochs, args.epochs) if args.epochs else (FIRST_EPOCHS, LATER_EPOCHS))
    elif args.step == "score":
        score(args.model, args.cache)
    else:
        cost()
    return 0


if __name__ == "__main__":
    sys.exit(main())
