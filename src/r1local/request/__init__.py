"""One chat request, the same from every front end: `ChatRequest` is the plain value the CLI and
each API dialect build; `prepare(request, engine)` applies the R1 policy once (thinking default
and budget, tools and their grammar, JSON formats, the clamp of max_tokens to the context) and
checks the request against what the engine declares it can do."""

from .chat import EFFORT_BUDGETS, ChatRequest, ResponseFormat
from .prepare import Prepared, prepare, submit
from .sampling import Sampling, sampling_params

__all__ = [
    "EFFORT_BUDGETS",
    "ChatRequest",
    "Prepared",
    "ResponseFormat",
    "Sampling",
    "prepare",
    "sampling_params",
    "submit",
]
