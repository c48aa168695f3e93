"""Continuous batching: one thread, one llama_context, N sequence slots.

Each step builds one llama_batch holding the next token of every generating sequence plus prompt
chunks of sequences still prefilling (up to n_batch tokens in all), runs one llama_decode, then
samples a token for every sequence that asked for logits. A request that arrives mid-way joins at
the next step; a cancelled one leaves at the next step. A finished sequence's cells stay in its
slot, so a later prompt that starts the same way (the next turn of a chat) reuses them.

With speculation on, a generating sequence may add a draft after its next token (speculative.py);
the same decode verifies every slot's draft, and the cells of refused draft tokens are dropped.

A grammar request's pick runs off the step (sampling.py): its sequence sits out the steps until
the pick returns, and a pick that takes longer than GRAMMAR_PICK_LIMIT_S ends its request.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field

from ..errors import ContextOverflow, Overloaded
from .admission import Admission
from .bindings import C
from .draft import DraftModel
from .events import Done, FinishReason, Timings, Usage, measure
from .logprobs import token_logprob
from .native import NativeModel
from .output import TextOutput
from .params import SamplingParams
from .prefix_cache import MIN_TOKENS, PrefixCache, common_prefix, load_state, seq_state
from .sampling import Pick, PickTooSlow, Sampler
from .speculative import SHADOW_LENGTH, DraftSource, NgramIndex, Pacing, Speculation, StepCost
from .stream import Stream

SWITCH_INTERVAL_S = 0.0005
GRAMMAR_PICK_LIMIT_S = 2.0  # one token's grammar check; a whole-vocabulary check takes ~0.1 s
PICK_POLL_S = 0.05  # while only grammar picks are in flight: how often cancellations are looked for
PICKS_AT_CLOSE_S = 60.0  # how long closing waits for picks in flight (they read the model's vocabulary)

log = logging.getLogger("r1local.engine")
_TOO_SLOW = "The grammar took more than {:g} s to check one token; simplify it (fewer alternatives open at once)"
BUDGET_CLOSE = "\n\nTime is up; I will answer now.\n</think>\n\n"  # ends reasoning that reached its budget


@dataclass
class Job:
    prompt: list[int]
    params: SamplingParams
    split_reasoning: bool  # separate <think>...</think> from the answer
    in_reasoning: bool  # the prompt already opened <think>
    sampler: Sampler  # built at submit, so a bad grammar is the caller's error, not the thread's
    parse_tools: bool = False  # read tool calls out of the text
    drafts: DraftSource | None = None  # where the sequence's drafts come from (n-grams indexed at submit)
    stream: Stream = field(default_factory=Stream)
    submitted: float = field(default_factory=time.perf_counter)


class Active:
    """A job that holds a slot: its sampler, its text pipeline and its clock."""

    def __init__(
        self,
        job: Job,
        slot: Slot,
        n_reused: int,
        max_tokens: int,
        native: NativeModel,
        speculation: Speculation | None = None,
    ):
        self.job = job
        self.slot = slot
        self.pending = job.prompt[n_reused:]  # prompt tokens still to evaluate
        self.n_reused = n_reused
        self.max_tokens = max_tokens
        self.sampler = job.sampler
        self.output = TextOutput(
            job.stream,
            job.params.stop,
            split_reasoning=job.split_reasoning,
            in_reasoning=job.in_reasoning,
            parse_tools=job.parse_tools,
            think_budget=job.params.think_budget,
        )
        self.next_token: int | None = None  # sampled, to be fed at the next step
        self.pick: Pick | None = None  # a grammar's pick in flight, off the step
        self.pick_started = 0.0
        self.draft: list[int] = []  # guessed tokens after next_token, fed and verified with it
        self.pacing = Pacing(speculation) if speculation else None
        self.drafted = self.accepted = 0
        self.generated = 0
        self.admitted = time.perf_counter()
        self.prompt_done = 0.0
        self.first_token = 0.0

    def finish(self, reason: FinishReason, error: str | None = None) -> None:
        self.output.close()
        timings = measure(
            self.job.submitted,
            self.admitted,
            self.prompt_done,
            self.first_token,
            time.perf_counter(),
            len(self.job.prompt) - self.n_reused,
            self.generated,
        )
        timings = dataclasses.replace(timings, draft_n=self.drafted, draft_n_accepted=self.accepted)
        usage = Usage(len(self.job.prompt), self.generated, self.n_reused, self.output.reasoning_tokens)
        self.sampler.close()
        self.job.stream.push(Done(reason, usage, timings, error, self.output.stops.matched))


def _never_started(job: Job) -> None:
    job.sampler.close()
    job.stream.push(Done("cancelled", Usage(len(job.prompt), 0), Timings(0, 0, 0, 0)))


@dataclass
class Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV cells this sequence holds
    active: Active | None = None
    last_used: float = 0.0


class Scheduler:
    def __init__(
        self,
        native: NativeModel,
        max_queue: int,
        prefix_cache_bytes: int = 0,
        speculation: Speculation | None = None,
        draft_model: DraftModel | None = None,
    ) -> None:
        self.native = native
        self.speculation = speculation
        self.draft_model = draft_model
        self.step_cost = StepCost()
        self.draft_source: Callable[[list[int]], DraftSource] | None = (
            NgramIndex if speculation and speculation.source == "ngram" else None
        )
        self.prefix_cache = PrefixCache(native, prefix_cache_bytes)
        self.slots = [Slot(seq) for seq in range(native.n_seq)]
        busy = lambda: sum(slot.active is not None for slot in self.slots)  # noqa: E731
        self.queue: Admission[Job] = Admission(
            len(self.slots), max_queue, busy, "draft_tokens_total", "draft_accepted_total"
        )
        self._batch = C.llama_batch_init(native.n_batch, 0, 1)
        self._budget_close = native.tokenize(BUDGET_CLOSE, add_special=False)
        self._picks: set[futures.Future] = set()  # grammar picks in flight, their requests ended or not
        # The scheduler thread takes the GIL back after every llama.cpp call; with Python's default
        # 5 ms switch interval a busy event-loop thread (the server streaming tokens) delays each
        # step by that much. Measured on gemma-270m, 4 clients: 43 -> 50 tokens/s.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._thread = threading.Thread(target=self._loop, name="r1local-scheduler", daemon=True)
        self._thread.start()

    # -- called from any thread --
    def submit(
        self,
        prompt: list[int],
        params: SamplingParams,
        *,
        split_reasoning: bool,
        in_reasoning: bool,
        parse_tools: bool = False,
    ) -> Stream:
        context = params.context(self.native.n_ctx_seq)
        if len(prompt) >= context:
            raise ContextOverflow(
                f"The prompt is {len(prompt)} tokens; the context holds {context}.",
                "Shorten the prompt or start with a larger --ctx.",
            )
        sampler = Sampler(params, self.native.vocab, self.native.n_vocab)
        drafts = self.draft_source(prompt) if self.draft_source else None
        job = Job(prompt, params, split_reasoning, in_reasoning, sampler, parse_tools, drafts)
        try:
            self.queue.enqueue(job)
        except Overloaded:
            sampler.close()
            raise
        return job.stream

    def stats(self) -> dict:
        return self.queue.stats(prefix_cache_bytes=self.prefix_cache.used, prefix_cache_hits=self.prefix_cache.hits)

    def close(self) -> None:
        self.queue.stop()
        self._thread.join()
        C.llama_batch_free(self._batch)
        if futures.wait(list(self._picks), PICKS_AT_CLOSE_S).not_done:
            log.warning("a grammar's pick still runs as %s closes", self.native.path.name)

    # -- the scheduler thread --
    def _loop(self) -> None:
        while True:
            with self.queue.cond:
                while self.queue.running and not self.queue.admissible() and not self._busy():
                    self.queue.cond.wait()
                if self.queue.running and not self.queue.admissible() and not self._ready():
                    self.queue.cond.wait(PICK_POLL_S)  # only picks in flight: until one returns
                if not self.queue.running:
                    break
                self._admit()
            self._reap_cancelled()
            self._collect_picks()
            if self._ready():
                try:
                    self._step()
                except Exception as error:  # a bug must end these requests, not the model
                    for slot in self.slots:
                        if slot.active:
                            self._release(slot, "error", f"{type(error).__name__}: {error}")
        for slot in self.slots:
            if slot.active:
                self._release(slot, "cancelled")
        for job in self.queue.waiting:
            _never_started(job)

    def _busy(self) -> bool:
        return any(slot.active for slot in self.slots)

    def _ready(self) -> bool:
        """Whether a sequence can go into the next step, or a pick has returned."""
        return any(slot.active and (slot.active.pick is None or slot.active.pick.done()) for slot in self.slots)

    def _wake(self, pick: futures.Future) -> None:
        with self.queue.cond:
            self._picks.discard(pick)
            self.queue.cond.notify()

    def _collect_picks(self) -> None:
        """Feed returned grammar picks to their sequences; end those whose pick takes too long."""
        now = time.perf_counter()
        for slot in self.slots:
            active = slot.active
            if active is None or active.pick is None:
                continue
            if active.pick.done():
                pick, active.pick = active.pick, None
                if isinstance(pick.exception(), PickTooSlow):
                    self._release(slot, "error", _TOO_SLOW.format(GRAMMAR_PICK_LIMIT_S))
                elif pick.exception() is not None:
                    self._release(slot, "error", f"The grammar failed: {pick.exception()}")
                else:
                    self._took(active, pick.result(), now, pick.logits)
            elif now - active.pick_started > GRAMMAR_PICK_LIMIT_S:  # stuck inside one llama.cpp call
                self._release(slot, "error", _TOO_SLOW.format(GRAMMAR_PICK_LIMIT_S))

    def _admit(self) -> None:
        """Give waiting jobs free slots, preferring the slot whose cache shares the longest prefix."""
        while self.queue.admissible():
            job = self.queue.waiting[0]
            if job.stream.cancelled:
                _never_started(self.queue.waiting.popleft())
                continue
            free = [slot for slot in self.slots if slot.active is None]
            if not free:
                return
            self.queue.waiting.popleft()
            shared = {s.seq: common_prefix(s.cached, job.prompt) for s in self.slots}  # each slot's cells of it
            slot = max(free, key=lambda s: (shared[s.seq], -s.last_used))
            kept = shared[slot.seq]
            if len(slot.cached) - kept >= MIN_TOKENS:  # about to overwrite a long history
                self.prefix_cache.save(slot.seq, slot.cached)
            kept = self._share_prefix(slot, kept, shared)
            cached, key = self.prefix_cache.longest(job.prompt)
            if key is not None and cached >= kept + MIN_TOKENS:
                restored = self.prefix_cache.restore(key, slot.seq)
                slot.cached = restored or []
                kept = cached if restored else 0
            # At least one prompt token must be evaluated to get logits for the first sample.
            reuse = min(kept, len(job.prompt) - 1)
            self.native.forget(slot.seq, reuse)
            del slot.cached[reuse:]
            room = job.params.context(self.native.n_ctx_seq) - len(job.prompt)
            max_tokens = min(job.params.max_tokens or room, room)
            slot.active = Active(job, slot, reuse, max_tokens, self.native, self.speculation)
            self.queue.counters["cached_tokens_total"] += reuse

    def _share_prefix(self, slot: Slot, kept: int, shared: dict[int, int]) -> int:
        """Copy another slot's cells into this one where all of them begin the prompt (`shared`:
        each slot's cells of it) and they are more than this slot keeps: a prompt admitted beside
        an equal one (a request's `n` choices, a prompt list) then starts from the same cells as
        it, and computes alike (llama.cpp's CPU kernels round differently in other batch shapes),
        without recomputing them. Returns the tokens this slot now keeps."""
        donors = [s for s in self.slots if s is not slot and kept < len(s.cached) == shared[s.seq]]
        if not donors:
            return kept
        donor = max(donors, key=lambda s: len(s.cached))
        state = seq_state(self.native, donor.seq)
        if state is None:
            return kept
        if not load_state(self.native, state, slot.seq):  # its own cells are gone too
            slot.cached.clear()
            return 0
        slot.cached = list(donor.cached)
        return len(slot.cached)

    def _reap_cancelled(self) -> None:
        for slot in self.slots:
            if slot.active and slot.active.job.stream.cancelled:
                self._release(slot, "cancelled")

    def _release(self, slot: Slot, reason: FinishReason, error: str | None = None) -> None:
        active = slot.active
        assert active is not None
        slot.active = None
        slot.last_used = time.perf_counter()
        if reason in ("cancelled", "error"):
            self.native.forget(slot.seq)
            slot.cached.clear()
        self.queue.finished(len(active.job.prompt), active.generated)
        self.queue.counters["draft_tokens_total"] += active.drafted
        self.queue.counters["draft_accepted_total"] += active.accepted
        active.finish(reason, error)

    def _step(self) -> None:
        batch = self._batch
        n = 0
        rows: list[tuple[Active, int, int]] = []  # sequence, batch index of its first logits row, rows

        def add(slot: Slot, token: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = len(slot.cached)
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = slot.seq
            batch.logits[n] = logits
            slot.cached.append(token)
            n += 1

        actives = [s.active for s in self.slots if s.active is not None]
        generating = [(a, a.next_token) for a in actives if a.next_token is not None]
        prefilling = [a for a in actives if a.next_token is None and a.pick is None]
        room = self.native.n_batch // 2 - len(generating)  # the other half stays for prompts
        planned: list[int] = []  # draft lengths
        for active, _ in generating:
            length = self._draft_length(active, room - sum(planned), len(generating) + sum(planned), len(generating))
            planned.append(length)
            if not length and active.pacing is not None and active.job.drafts is not None and not active.pacing.shadow:
                active.pacing.watch(active.job.drafts.propose(SHADOW_LENGTH))
        drafted = 0
        draft_min = self.speculation.draft_min if self.speculation else 1
        drafts = self._drafts(generating, planned)
        for (active, next_token), draft, length in zip(generating, drafts, planned, strict=True):
            active.draft = draft if len(draft) >= draft_min else []
            if length and not active.draft and self.draft_model is not None and active.pacing is not None:
                active.pacing.declined()  # the draft model was unsure: asking it again soon costs as much
            drafted += len(active.draft)
            rows.append((active, n, 1 + len(active.draft)))  # a slot's rows are consecutive
            for token in (next_token, *active.draft):
                add(active.slot, token, True)
            active.next_token = None
        budget = self.native.n_batch - n
        for active in prefilling:
            if budget <= 0:
                break
            chunk, active.pending = active.pending[:budget], active.pending[budget:]
            for i, token in enumerate(chunk):
                last = not active.pending and i == len(chunk) - 1
                if last:
                    rows.append((active, n, 1))
                add(active.slot, token, last)
            budget -= len(chunk)
        batch.n_tokens = n
        if n == 0:
            return

        started = time.perf_counter()
        status = C.llama_decode(self.native.ctx, batch)
        if status != 0:
            involved = {a.slot.seq: a.slot for a, _, _ in rows} | {a.slot.seq: a.slot for a in prefilling}
            for slot in involved.values():
                if slot.active:
                    self._release(slot, "error", f"llama_decode failed with status {status}")
            return

        now = time.perf_counter()
        for active, first, count in rows:
            if active.sampler.deferred:  # a grammar's: no drafts, one row
                self._start_pick(active, first, now)
            else:
                self._verify(active, first, count, now)
        if self.speculation and n == len(generating) + drafted:
            # generation only: the step times its rows, sampling included (a row's sampling over a
            # large vocabulary is part of what a draft row costs)
            self.step_cost.observe(n, time.perf_counter() - started)

    def _start_pick(self, active: Active, index: int, now: float) -> None:
        active.pick = active.sampler.start(self.native.ctx, index, now + GRAMMAR_PICK_LIMIT_S)
        active.pick_started = now
        with self.queue.cond:
            self._picks.add(active.pick)
        active.pick.add_done_callback(self._wake)

    def _took(self, active: Active, token: int, now: float, logits) -> None:
        """The token sampled for `active` from `logits`."""
        if active.job.params.logprobs is not None and not self.native.is_eog(token):
            active.job.stream.push(token_logprob(self.native, logits, token, active.job.params))
        progress = active.job.stream.progress
        if active.generated == 0:
            active.prompt_done = active.first_token = now
            progress.prompt_tokens, progress.cached_tokens = len(active.job.prompt), active.n_reused
            progress.prompt_s, progress.first_token = now - active.admitted, now
        active.generated += 1
        progress.generated = active.generated
        active.next_token = None  # _on_token sets it unless the slot ends or its reasoning budget closes
        self._on_token(active, token)

    def _draft_length(self, active: Active, room: int, rows: int, slots: int) -> int:
        """How many tokens the slot should guess after its next one: as many as pay in a step of
        `rows` rows for `slots` sequences (Pacing.length), within the step's room, the slot's token
        limit and its reasoning budget (a budget spent inside a draft would need its closing
        words where draft tokens already are). A grammar's deferred pick checks one row."""
        if active.pacing is None or room <= 0 or active.sampler.deferred:
            return 0
        limit = min(room, active.max_tokens - active.generated - 1)
        output = active.output
        if output.think_budget is not None and output.in_reasoning:
            limit = min(limit, output.think_budget - output.reasoning_tokens - 1)
        draft_cost = self.step_cost.draft_relative() if self.draft_model is not None else 0.0
        return active.pacing.length(limit, rows, slots, self.step_cost.relative, draft_cost)

    def _drafts(self, generating: list[tuple[Active, int]], lengths: list[int]) -> list[list[int]]:
        """Each sequence's guess of its length after its next token: from the draft model (one batch
        for all) or its own n-grams."""
        if not any(lengths):
            return [[] for _ in generating]
        pairs = zip(generating, lengths, strict=True)
        if self.draft_model is not None:
            drafts = self.draft_model.propose(
                [(a.slot.seq, [*a.slot.cached, next_token], length) for (a, next_token), length in pairs]
            )
            self.step_cost.observe_draft(sum(map(len, drafts)), self.draft_model.drafting_s)
            return drafts
        return [a.job.drafts.propose(length) if length and a.job.drafts else [] for (a, _), length in pairs]

    def _verify(self, active: Active, first: int, count: int, now: float) -> None:
        """Sample the target at each of the sequence's rows while its draft agrees (llama.cpp's rule),
        drop the refused draft tokens' cells, then pass the kept tokens on in order."""
        slot = active.slot
        draft, active.draft = active.draft, []
        tokens: list[int] = []
        for i in range(count):
            token = active.sampler.sample(self.native.ctx, first + i)
            tokens.append(token)
            if i == len(draft) or token != draft[i] or (self.native.is_eog(token) and not active.job.params.ignore_eos):
                break
        accepted = 0  # draft tokens the target sampled too
        while accepted < min(len(tokens), len(draft)) and tokens[accepted] == draft[accepted]:
            accepted += 1
        base = self._batch.pos[first]  # where the slot's next token went
        self._trim(slot, base + 1 + accepted)
        if draft and active.pacing is not None:
            active.pacing.verified(len(draft), accepted)
            active.drafted += len(draft)
            active.accepted += accepted
        for j, token in enumerate(tokens):
            self._took(active, token, now, C.llama_get_logits_ith(self.native.ctx, first + j))
            if slot.active is not active:
                return
            if active.next_token is None:  # the reasoning budget closed: its words follow this token
                self._trim(slot, base + 1 + j)
                return

    def _trim(self, slot: Slot, keep: int) -> None:
        if keep < len(slot.cached):
            self.native.forget(slot.seq, keep)
            del slot.cached[keep:]

    def _on_token(self, active: Active, token: int) -> None:
        slot = active.slot
        if active.job.drafts is not None:
            active.job.drafts.add(token)
            if active.pacing is not None:
                active.pacing.wrote(token)
        if self.native.is_eog(token) and not active.job.params.ignore_eos:
            active.generated -= 1  # the end marker is not part of the answer
            self._release(slot, "stop")
            return
        if active.output.feed(self.native.piece(token)):
            self._release(slot, "stop")
        elif active.generated >= active.max_tokens:  # clamped to the context at admission
            self._release(slot, "length")
        elif active.output.budget_spent:
            self._close_reasoning(active, token)
        else:
            active.next_token = token

    def _close_reasoning(self, active: Active, token: int) -> None:
        """The reasoning budget is spent: write the end of the think block in the model's place
        (fed to the model like prompt text, and to the sampler so a grammar follows it); the
        model then answers."""
        for forced in self._budget_close:
            active.output.write(self.native.piece(forced))
            active.sampler.accept(forced)
            if active.job.drafts is not None:
                active.job.drafts.add(forced)
        active.generated += len(self._budget_close)
        active.pending = [token, *self._budget_close]
