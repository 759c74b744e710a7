"""The training loop behind router.embed.finetune: frozen lower layers cached, top layers learn.

Imports torch at module import: load it only from :func:`router.embed.finetune.finetune_encoder`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from tierwise.router.embed.finetune import FinetuneConfig


class _Top(nn.Module):
    """The trainable top layers + mean pooling + L2 norm + a routing head."""

    def __init__(self, bert: Any, layers: nn.ModuleList, prior: np.ndarray, objective: str) -> None:
        super().__init__()
        self.layers = layers
        self.config = bert.config
        dim, n_models = int(bert.config.hidden_size), len(prior)
        logit = torch.tensor(np.log(prior / (1 - prior)), dtype=torch.float32)
        self.objective = objective
        if objective == "irt":
            self.difficulty = nn.Linear(dim, 1)
            nn.init.zeros_(self.difficulty.weight)
            nn.init.zeros_(self.difficulty.bias)
            self.ability = nn.Parameter(logit)
            self.log_disc = nn.Parameter(torch.zeros(n_models))
        else:
            self.head = nn.Linear(dim, n_models)
            nn.init.zeros_(self.head.weight)
            with torch.no_grad():
                self.head.bias.copy_(logit)
        # Unit-norm embeddings give logits of at most |w|; a learned scale lets them grow fast.
        self.log_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))

    def embed(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        attn = create_bidirectional_mask(config=self.config, inputs_embeds=h, attention_mask=mask)
        for layer in self.layers:
            out = layer(h, attention_mask=attn)
            h = out[0] if isinstance(out, tuple) else out
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return nn.functional.normalize(pooled, dim=-1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        e = self.embed(h, mask) * self.log_scale.exp()
        if self.objective == "irt":
            return self.log_disc.exp() * (self.ability - self.difficulty(e))
        out: torch.Tensor = self.head(e)
        return out


def _lengths_order(lengths: Sequence[int]) -> np.ndarray:
    return np.argsort(np.asarray(lengths), kind="stable")


@torch.inference_mode()
def frozen_states(
    st: Any, texts: list[str], n_frozen: int, batch_size: int, progress: bool
) -> list[torch.Tensor]:
    """Each text's token activations after the lower ``n_frozen`` layers (float16, unpadded)."""
    from tqdm.auto import tqdm

    bert: Any = st[0].auto_model
    all_layers = bert.encoder.layer
    bert.encoder.layer = all_layers[:n_frozen]
    out: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    order = _lengths_order([len(t) for t in texts])  # similar lengths batch with little padding
    try:
        bar = tqdm(total=len(texts), desc="frozen layers", unit="prompt", disable=not progress)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            feats = st.preprocess([texts[i] for i in idx])
            hidden = bert(
                input_ids=feats["input_ids"],
                attention_mask=feats["attention_mask"],
                token_type_ids=feats.get("token_type_ids"),
            ).last_hidden_state
            n_tok = feats["attention_mask"].sum(1)
            for row, i in enumerate(idx):
                out[int(i)] = hidden[row, : int(n_tok[row])].to(torch.float16).clone()
            bar.update(len(idx))
        bar.close()
    finally:
        bert.encoder.layer = all_layers
    return out


def _collate(states: list[torch.Tensor], idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(int(states[i].shape[0]) for i in idx)
    dim = int(states[idx[0]].shape[1])
    h = torch.zeros(len(idx), width, dim)
    mask = torch.zeros(len(idx), width, dtype=torch.long)
    for row, i in enumerate(idx):
        n = int(states[i].shape[0])
        h[row, :n] = states[i].float()
        mask[row, :n] = 1
    return h, mask


def _batches(idx: np.ndarray, lengths: np.ndarray, size: int) -> list[np.ndarray]:
    by_len = idx[np.argsort(lengths[idx], kind="stable")]
    return [by_len[s : s + size] for s in range(0, len(by_len), size)]


def _mean_loss(
    model: _Top, states: list[torch.Tensor], y: torch.Tensor, batches: list[np.ndarray]
) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.inference_mode():
        for b in batches:
            h, mask = _collate(states, b)
            loss = nn.functional.binary_cross_entropy_with_logits(model(h, mask), y[b])
            total, n = total + float(loss) * len(b), n + len(b)
    return total / max(n, 1)


def train_top_layers(
    directory: Path,
    texts: list[str],
    y: np.ndarray,
    cfg: FinetuneConfig,
    seed: int,
    max_tokens: int,
    progress: bool,
) -> tuple[Any, dict[str, Any]]:
    """Load a fresh copy of the model, train its top layers, return ``(model, history)``."""
    from sentence_transformers import SentenceTransformer

    t0 = time.perf_counter()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    try:
        st = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
        st.max_seq_length = max_tokens
        bert: Any = st[0].auto_model
        n_layers = len(bert.encoder.layer)
        k = min(cfg.layers, n_layers)
        for p in st.parameters():
            p.requires_grad_(False)
        states = frozen_states(st, texts, n_layers - k, cfg.batch_size, progress)
        cached_s = time.perf_counter() - t0
        prior = np.clip(y.mean(0), 0.02, 0.98)
        top = _Top(bert, bert.encoder.layer[n_layers - k :], prior, cfg.objective)
        for p in top.parameters():
            p.requires_grad_(True)
        history = _fit(top, states, torch.from_numpy(y), cfg, seed, progress)
        for p in st.parameters():
            p.requires_grad_(False)
        st.eval()
        history.update(cached_seconds=round(cached_s, 2))
        history["seconds"] = round(time.perf_counter() - t0, 2)
        return st, history
    finally:
        torch.set_num_threads(threads_before)


def _fit(
    top: _Top,
    states: list[torch.Tensor],
    y: torch.Tensor,
    cfg: FinetuneConfig,
    seed: int,
    progress: bool,
) -> dict[str, Any]:
    """Epochs of AdamW with early stopping on a seeded held-out slice; the best epoch is kept."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    n = len(states)
    perm = rng.permutation(n)
    n_hold = max(1, round(cfg.holdout * n))
    hold, train = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    lengths = np.array([s.shape[0] for s in states])
    hold_batches = _batches(hold, lengths, cfg.batch_size)
    head = [p for name, p in top.named_parameters() if not name.startswith("layers.")]
    opt = torch.optim.AdamW(
        [
            {"params": list(top.layers.parameters()), "lr": cfg.lr},
            {"params": head, "lr": cfg.head_lr, "weight_decay": 0.0},
        ]
    )
    best = _mean_loss(top, states, y, hold_batches)
    history: dict[str, Any] = {"holdout_loss": [round(best, 5)], "train_loss": [], "best_epoch": 0}
    best_state = {k: v.clone() for k, v in top.state_dict().items()}
    bar = tqdm(range(cfg.epochs), desc="fine-tune", unit="epoch", disable=not progress)
    stale = 0
    for epoch in bar:
        top.train()
        batches = _batches(train, lengths, cfg.batch_size)
        total = 0.0
        for j in rng.permutation(len(batches)):
            h, mask = _collate(states, batches[j])
            loss = nn.functional.binary_cross_entropy_with_logits(top(h, mask), y[batches[j]])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batches[j])
        held = _mean_loss(top, states, y, hold_batches)
        history["train_loss"].append(round(total / len(train), 5))
        history["holdout_loss"].append(round(held, 5))
        bar.set_postfix(train=f"{total / len(train):.4f}", holdout=f"{held:.4f}")
        if held < best - 1e-5:
            best, stale, history["best_epoch"] = held, 0, epoch + 1
            best_state = {k: v.clone() for k, v in top.state_dict().items()}
        else:
            stale += 1
            if stale > cfg.patience:
                break
    top.load_state_dict(best_state)
    return history
