"""Batched decoding of the n samples of one prompt in one llama.cpp context.

`llama_cpp.Llama` decodes one sequence at a time; on a CPU a single stream leaves the
matrix units idle between tokens. Here the prompt is evaluated once in sequence 0,
its KV cells are shared with sequences 1..n-1 (`llama_memory_seq_cp`: no copy), and
each step decodes one `llama_batch` holding the next token of every live sequence.
Each sequence has its own sampler chain (the same chain `Llama` builds: top-k 40,
top-p, min-p 0.05, temperature, seeded dist) so samples differ and replay exactly.

The prompt's KV stays between calls: a next request sharing a prefix (a few-shot
header) evaluates only what differs.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import llama_cpp
from llama_cpp import _internals as internals

MAX_PARALLEL = 8
"""Most sequences decoded together (the context's n_seq_max)."""


@dataclass
class Sample:
    text: str
    finish_reason: str
    completion_tokens: int


class ParallelSampler:
    """A second context on a loaded `Llama`'s weights, for multi-sequence decoding."""

    def __init__(self, llm: llama_cpp.Llama, n_ctx: int, n_threads: int) -> None:
        self._llm = llm
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = min(n_ctx, 512)
        params.n_ubatch = min(n_ctx, 512)
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.n_seq_max = MAX_PARALLEL
        params.kv_unified = True  # one KV buffer: sequences share the prompt's cells
        params.swa_full = True  # sliding-window layers keep every cell, so rewinds work
        self._ctx = internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._mem = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        self._batch = llama_cpp.llama_batch_init(max(params.n_batch, MAX_PARALLEL), 0, MAX_PARALLEL)
        self.n_ctx = n_ctx
        self.n_batch = params.n_batch
        self._cached: list[int] = []  # prompt tokens whose KV sits in sequence 0

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        self._ctx.close()

    def group_size(self, n_prompt: int, max_tokens: int) -> int:
        """How many samples fit the context together."""
        room = self.n_ctx - n_prompt
        return max(0, min(MAX_PARALLEL, room // max(1, max_tokens)))

    def sample(
        self,
        prompt_tokens: list[int],
        seeds: list[int | None],
        *,
        temperature: float,
        top_p: float,
        max_tokens: int,
        stop: tuple[str, ...],
    ) -> list[Sample]:
        n = len(seeds)
        assert 1 <= n <= MAX_PARALLEL
        self._eval_prompt(prompt_tokens)
        for seq in range(1, n):
            llama_cpp.llama_memory_seq_cp(self._mem, 0, seq, -1, -1)
        samplers = [self._sampler(seed, temperature, top_p) for seed in seeds]
        pieces: list[list[bytes]] = [[] for _ in range(n)]
        texts = [""] * n
        finish: list[str | None] = [None] * n
        counts = [0] * n
        outputs = {seq: -1 for seq in range(n)}  # batch index of each live sequence's logits
        pos = len(prompt_tokens)
        try:
            while True:
                step: list[tuple[int, int]] = []
                for seq, idx in outputs.items():
                    token = samplers[seq].sample(self._ctx, idx)
                    if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                        finish[seq] = "stop"
                        continue
                    counts[seq] += 1
                    pieces[seq].append(self._piece(token))
                    texts[seq] = b"".join(pieces[seq]).decode("utf-8", errors="ignore")
                    hit = _first_stop(texts[seq], stop)
                    if hit is not None:
                        texts[seq], finish[seq] = texts[seq][:hit], "stop"
                    elif counts[seq] >= max_tokens:
                        finish[seq] = "length"
                    else:
                        step.append((seq, token))
                if not step:
                    break
                batch = self._batch
                batch.n_tokens = len(step)
                for i, (seq, token) in enumerate(step):
                    batch.token[i] = token
                    batch.pos[i] = pos
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = seq
                    batch.logits[i] = True
                self._decode()
                outputs = {seq: i for i, (seq, _) in enumerate(step)}
                pos += 1
        finally:
            for seq in range(1, n):
                llama_cpp.llama_memory_seq_rm(self._mem, seq, -1, -1)
            llama_cpp.llama_memory_seq_rm(self._mem, 0, len(prompt_tokens), -1)
            for sampler in samplers:
                sampler.close()
        return [Sample(texts[s], finish[s] or "length", counts[s]) for s in range(n)]

    def _eval_prompt(self, tokens: list[int]) -> None:
        """Evaluate `tokens` in sequence 0, reusing the cached common prefix."""
        common = 0
        for a, b in zip(self._cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # the last token is always re-run for fresh logits
        if not llama_cpp.llama_memory_seq_rm(self._mem, -1, common, -1):
            llama_cpp.llama_memory_clear(self._mem, True)
            common = 0
        self._cached = []
        rest = tokens[common:]
        for start in range(0, len(rest), self.n_batch):
            chunk = rest[start : start + self.n_batch]
            batch = self._batch
            batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = common + start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = False
            batch.logits[len(chunk) - 1] = True
            self._decode()
        self._cached = list(tokens)

    def _decode(self) -> None:
        status = llama_cpp.llama_decode(self._ctx.ctx, self._batch)
        if status != 0:
            self._cached = []
            llama_cpp.llama_memory_clear(self._mem, True)
            raise RuntimeError(f"llama_decode failed with status {status}")

    def _sampler(self, seed: int | None, temperature: float, top_p: float):
        sampler = internals.LlamaSampler()
        if temperature <= 0:
            sampler.add_greedy()
            return sampler
        sampler.add_top_k(40)
        sampler.add_top_p(top_p, 1)
        sampler.add_min_p(0.05, 1)
        sampler.add_temp(temperature)
        sampler.add_dist(llama_cpp.LLAMA_DEFAULT_SEED if seed is None else seed & 0xFFFFFFFF)
        return sampler

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        size = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if size < 0:
            buf = ctypes.create_string_buffer(-size)
            size = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[:size]


def _first_stop(text: str, stop: tuple[str, ...]) -> int | None:
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return min(hits) if hits else None
