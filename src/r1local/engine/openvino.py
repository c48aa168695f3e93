"""The OpenVINO GenAI engine: R1 distills on Intel NPUs, Intel GPUs and any CPU.

It reads a GGUF directly (qwen2 and llama architectures) or an OpenVINO IR folder (the NPU-ready
ones OpenVINO publishes). Prompts are rendered by the same chat template code as on llama.cpp and
tokenised by the GGUF's own tokenizer through llama.cpp (OpenVINO's GGUF tokenizer does not treat
<｜User｜> and friends as special tokens); generated ids come back through the same text pipeline
(TextOutput), so stop strings, the reasoning split and max tokens behave exactly as on llama.cpp.

One thread drives the pipeline. On CPU and GPU it is OpenVINO's continuous-batching pipeline:
requests join and leave between steps. On the NPU, whose pipeline is compiled for one sequence of
static shapes, requests run one at a time with a streamer that can stop or cancel each.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config
from ..errors import Cancelled, ContextOverflow, ModelFileError, ModelNotFound
from .admission import Admission
from .base import Engine
from .events import Done, FinishReason, Usage, measure
from .openvino_files import FolderVocab, available_devices, folder_context, genai, open_pipeline, reason
from .openvino_plan import OpenVINOPlan, choose_device, plan
from .output import TextOutput
from .params import SamplingParams
from .stream import Stream
from .vocab import LlamaVocab


@dataclass
class Request:
    prompt: list[int]
    config: Any  # openvino_genai.GenerationConfig
    max_tokens: int
    ignore_eos: bool
    output: TextOutput
    piece: Callable[[int], bytes]
    stream: Stream
    submitted: float = field(default_factory=time.perf_counter)
    admitted: float = 0.0
    first_token: float = 0.0
    generated: int = 0
    handle: Any = None  # the continuous-batching pipeline's GenerationHandle
    ended: FinishReason | None = None  # set when a token ended it (end marker, stop string, length)


class OpenVINOModel(Engine):
    engine = "openvino"

    def __init__(
        self, name: str, path: Path, ov_plan: OpenVINOPlan, pipeline: Any, vocab: Any, max_queue: int, info: Any = None
    ) -> None:
        self.name = name
        self.path = path
        self.plan = ov_plan
        self.pipeline = pipeline
        self.vocab = vocab
        self.info = info
        self.template = vocab.chat_template()
        self.device = ov_plan.device
        self.n_ctx = ov_plan.n_ctx
        self.n_parallel = ov_plan.n_parallel
        self.prompt_limit = ov_plan.max_prompt_len
        self._genai = genai()
        self._active: dict[int, Request] = {}
        self._next_id = 0
        self.queue: Admission[Request] = Admission(self.n_parallel, max_queue, lambda: len(self._active))
        self._thread = threading.Thread(target=self._loop, name="r1local-openvino", daemon=True)
        self._thread.start()

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        name: str | None = None,
        n_ctx: int | None = None,
        n_parallel: int = 1,
        n_threads: int | None = None,
        max_queue: int | None = None,
        device: str | None = None,
        on_compile: Callable[[OpenVINOPlan], None] | None = None,
        abort: Callable[[], bool] | None = None,
    ) -> OpenVINOModel:
        """Load a GGUF or an IR folder. `on_compile` is told before a first (slow) compile. abort:
        asked before the compile and after it (OpenVINO cannot stop one midway); True stops the load."""
        path = Path(path).expanduser()
        if path.suffix == ".xml":  # a pulled folder is found by its openvino_model.xml
            path = path.parent
        ov = genai()
        info = None
        if path.is_dir():
            if not (path / "openvino_model.xml").is_file():
                raise ModelNotFound(f"{path} is not an OpenVINO model folder (no openvino_model.xml).")
            vocab: Any = FolderVocab(path)
            trained = folder_context(path)
        elif path.is_file():
            from ..gguf_meta import read_gguf

            info = read_gguf(path)
            vocab = LlamaVocab(path)
            trained = info.context_length or config.DEFAULT_CTX
        else:
            raise ModelNotFound(f"No model file or folder at {path}.", "Check the path, or pull a model first.")
        ov_plan = plan(
            path,
            choose_device(available_devices(), device, path.is_dir()),
            n_ctx=n_ctx,
            n_parallel=n_parallel,
            trained_ctx=trained,
            n_threads=n_threads,
        )
        ov_plan.cache_dir.mkdir(parents=True, exist_ok=True)
        if on_compile and ov_plan.first_compile:
            on_compile(ov_plan)
        try:
            _check(abort, path)
            pipeline = open_pipeline(ov, path, ov_plan)
            _check(abort, path)
        except Cancelled:
            vocab.close()
            raise
        except RuntimeError as error:
            vocab.close()
            what = f"{path.name} ({info.architecture})" if info else path.name
            raise ModelFileError(
                f"OpenVINO could not load {what} on the {ov_plan.device}: {reason(error)}.",
                "OpenVINO reads qwen2 and llama GGUFs (F16, Q8_0, Q4_0, Q4_K_M) and IR folders; "
                "use llama.cpp for others (drop @openvino).",
            ) from None
        queue = 4 * ov_plan.n_parallel if max_queue is None else max_queue
        return cls(name or path.stem, path, ov_plan, pipeline, vocab, queue, info)

    # -- requests --
    def prompt_tokens(self, text: str) -> list[int]:
        return self.vocab.prompt_tokens(text)

    def _submit(
        self,
        tokens: list[int],
        params: SamplingParams,
        *,
        split_reasoning: bool,
        in_reasoning: bool,
        parse_tools: bool = False,
    ) -> Stream:
        if len(tokens) >= self.n_ctx:
            raise ContextOverflow(
                f"The prompt is {len(tokens)} tokens; the context holds {self.n_ctx}.",
                "Shorten the prompt or start with a larger --ctx.",
            )
        room = self.n_ctx - len(tokens)
        max_tokens = min(params.max_tokens or room, room)
        stream = Stream()
        piece = self.vocab.decoder() if isinstance(self.vocab, FolderVocab) else self.vocab.piece
        request = Request(
            tokens,
            generation_config(self._genai, params, max_tokens, self.vocab.eos),
            max_tokens,
            params.ignore_eos,
            TextOutput(stream, params.stop, split_reasoning=split_reasoning, in_reasoning=in_reasoning),
            piece,
            stream,
        )
        self.queue.enqueue(request)
        return stream

    def stats(self) -> dict:
        return self.queue.stats(prefix_cache_bytes=0, prefix_cache_hits=0)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "max_prompt_len": self.plan.max_prompt_len,
            "min_response_len": self.plan.min_response_len,
        }

    def close(self) -> None:
        self.queue.stop()
        self._thread.join()
        self.pipeline = None
        self.vocab.close()

    # -- the engine thread --
    def _loop(self) -> None:
        queue = self.queue
        while True:
            with queue.cond:
                while queue.running and not queue.waiting and not self._active:
                    queue.cond.wait()
                if not queue.running:
                    break
            try:
                if self.plan.continuous_batching:
                    self._step()
                else:
                    self._run_one()
            except Exception as error:  # a failure ends the requests in flight, not the model
                for request in list(self._active.values()):
                    self._finish(request, "error", f"{type(error).__name__}: {error}")
        with queue.cond:
            left = list(self._active.values()) + list(queue.waiting)
            queue.waiting.clear()
        for request in left:
            if request.handle is not None:
                request.handle.cancel()
            self._finish(request, "cancelled")

    def _admit(self) -> list[tuple[int, Request]]:
        admitted = []
        with self.queue.cond:
            while self.queue.waiting and len(self._active) < self.n_parallel:
                request = self.queue.waiting.popleft()
                if request.stream.cancelled:
                    self._finish(request, "cancelled")
                    continue
                request.admitted = time.perf_counter()
                self._active[self._next_id] = request
                admitted.append((self._next_id, request))
                self._next_id += 1
        return admitted

    def _step(self) -> None:
        """One step of the continuous batch: new requests join, every active one gets its tokens."""
        for request_id, request in self._admit():
            request.handle = self.pipeline.add_request(request_id, _tensor(request.prompt), request.config)
        for request in list(self._active.values()):
            if request.stream.cancelled:
                request.handle.cancel()
                self._finish(request, "cancelled")
        if not self._active:
            return
        self.pipeline.step()
        for request in list(self._active.values()):
            while request.ended is None and request.handle.can_read():
                for output in request.handle.read().values():
                    for token in output.generated_ids:
                        if request.ended is None:
                            self._on_token(request, token)
                    if request.ended is None and str(output.finish_reason).endswith(("STOP", "LENGTH")):
                        request.ended = "length" if str(output.finish_reason).endswith("LENGTH") else "stop"
            if request.ended is not None:
                if str(request.handle.get_status()).endswith("RUNNING"):
                    request.handle.cancel()  # ended on our side: a stop string or the end marker
                self._finish(request, request.ended)

    def _run_one(self) -> None:
        """The NPU's way: one request at a time, a streamer that stops or cancels it."""
        admitted = self._admit()
        if not admitted:
            return
        _, request = admitted[0]
        status = self._genai.StreamingStatus
        streamer_base: Any = self._genai.StreamerBase  # openvino_genai is imported when the engine starts
        engine = self

        class TokenStreamer(streamer_base):
            def write(self, token):
                for t in token if isinstance(token, list) else [token]:
                    if request.ended is None:
                        engine._on_token(request, t)
                if request.stream.cancelled:
                    return status.CANCEL
                return status.RUNNING if request.ended is None else status.STOP

            def end(self):
                pass

        self.pipeline.generate(_tensor(request.prompt), request.config, TokenStreamer())
        if request.stream.cancelled and request.ended is None:
            request.ended = "cancelled"
        self._finish(request, request.ended or ("length" if request.generated >= request.max_tokens else "stop"))

    def _on_token(self, request: Request, token: int) -> None:
        now = time.perf_counter()
        if not request.first_token:
            request.first_token = now
        if self.vocab.is_eog(token) and not request.ignore_eos:
            request.ended = "stop"  # the end marker is not part of the answer
            return
        request.generated += 1
        if request.output.feed(request.piece(token)):
            request.ended = "stop"
        elif request.generated >= request.max_tokens:
            request.ended = "length"

    def _finish(self, request: Request, reason: FinishReason, error: str | None = None) -> None:
        with self.queue.cond:
            for key, value in list(self._active.items()):
                if value is request:
                    del self._active[key]
            self.queue.finished(len(request.prompt), request.generated)
        request.output.close()
        admitted = request.admitted or time.perf_counter()
        timings = measure(
            request.submitted,
            admitted,
            request.first_token,
            request.first_token,
            time.perf_counter(),
            len(request.prompt),
            request.generated,
        )
        request.stream.push(
            Done(
                reason,
                Usage(len(request.prompt), request.generated, 0, request.output.reasoning_tokens),
                timings,
                error,
                request.output.stops.matched,
            )
        )


def _check(abort: Callable[[], bool] | None, path: Path) -> None:
    if abort is not None and abort():
        raise Cancelled(f"The load of {path.name} was stopped.")


def generation_config(ov: Any, params: SamplingParams, max_tokens: int, eos: int) -> Any:
    """SamplingParams as OpenVINO GenAI's GenerationConfig (stop strings stay with TextOutput;
    the end marker is set here because a converted GGUF's folder carries no generation_config.json)."""
    c = ov.GenerationConfig()
    c.max_new_tokens = max_tokens
    c.eos_token_id = eos
    c.stop_token_ids = {eos}
    c.ignore_eos = params.ignore_eos
    c.repetition_penalty = params.repeat_penalty
    c.presence_penalty = params.presence_penalty
    c.frequency_penalty = params.frequency_penalty
    if params.temperature == 0:
        c.do_sample = False
    else:
        c.do_sample = True
        c.temperature = params.temperature
        c.top_p = params.top_p
        c.min_p = params.min_p
        if params.top_k:
            c.top_k = params.top_k
        c.rng_seed = params.seed if params.seed is not None else random.getrandbits(31)
    return c


def _tensor(tokens: list[int]) -> Any:
    import numpy as np
    import openvino

    return openvino.Tensor(np.array([tokens], dtype=np.int64))
