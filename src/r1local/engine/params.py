"""Per-request generation settings. extra="forbid": a misspelt option is an error, not a default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# DeepSeek's recommendation for the R1 distills.
R1_TEMPERATURE = 0.6
R1_TOP_P = 0.95
# llama.cpp's, Ollama's and LM Studio's default. Without it top-p sorts the whole vocabulary at every
# token: on the R1 distills' 151,665 tokens about 10 ms a token on a two-core PC, more than the
# tiny test model's whole step (17 ms against 7 ms per token, 20,000 tokens into a context)
DEFAULT_TOP_K = 40
# llama.cpp takes these as 32-bit ints and allocates per unit of the penalty window
MAX_TOP_K = 1_000_000
MAX_REPEAT_LAST_N = 131_072  # the longest trained context of the R1 distills


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(R1_TEMPERATURE, ge=0.0, le=5.0)  # 0 means greedy
    top_p: float = Field(R1_TOP_P, gt=0.0, le=1.0)
    top_k: int = Field(DEFAULT_TOP_K, ge=0, le=MAX_TOP_K)  # 0 disables
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repeat_penalty: float = Field(1.0, gt=0.0, le=10.0)
    repeat_last_n: int = Field(64, ge=0, le=MAX_REPEAT_LAST_N)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    seed: int | None = None  # None draws a fresh seed
    max_tokens: int | None = Field(None, ge=1)  # None: until the context is full
    stop: list[str] = Field(default_factory=list)
    grammar: str | None = None  # GBNF that constrains the answer
    grammar_triggers: list[int] = Field(default_factory=list)  # lazy grammar: on once one of these tokens is sampled
    ignore_eos: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)  # report each token's logprob and this many alternatives
    post_sampling: bool = False  # report them after logit_bias, top-k/p, min-p and temperature (llama-server's)
    think_budget: int | None = Field(None, ge=0)  # reasoning tokens before the engine closes the think block
    context_limit: int | None = Field(None, ge=1)  # use at most this much of the context (Ollama's num_ctx)
    logit_bias: list[tuple[int, float]] = Field(default_factory=list)  # (token id, added logit); -inf bans

    def context(self, n_ctx: int) -> int:
        """The tokens of context one request may use: the engine's, or less if it asked."""
        return min(n_ctx, self.context_limit or n_ctx)
