"""Speculative decoding and KV cache types, side by side with llama-server doing the same.

n-gram lookup: r1local serve with and without `--spec ngram`, llama-server (built from the vendored
llama.cpp of the installed llama-cpp-python, scripts/build_peers.py) with and without
`--spec-type ngram-simple`, on gemma-3-270m Q4_K_M (PyPI), greedy, a fixed number of tokens:
- input-grounded prompts (rename a function in a code file, repeat a passage, quote a list), which
  the answer copies from; prose prompts, greedy (a small model soon repeats itself); and prose
  sampled at temperature 0.8 ("sampled"), which does not repeat: the cost of lookup that finds little;
- each round gets fresh prompts (other names, other passages): identical prompts would let caches
  and earlier requests inflate what lookup finds;
- rounds alternate the four servers; every figure is the median of the rounds;
- each prompt is one user message through /v1/chat/completions, as an instruction-tuned model is
  used (gemma 3 270M is one: through its chat template it copies what it is asked to copy), or raw
  text through /v1/completions with --route raw.
Decode speed: (tokens - 1) / (last token - first token), summed over a set's requests.

Draft model (--draft FILE): r1local serve --draft FILE beside llama-server -md FILE, same rounds; with
--model the target is another GGUF (a draft that is always refused measures what drafting costs).

KV cache: llama.cpp's own KV buffer per token at f16, q8_0 and q4_0, r1local's decode speed with
each (alternating, medians), and the top-1 agreement of q8_0/q4_0 with f16 over 512 tokens of
gemma's own greedy text (teacher-forced: every position sees the same text).

    python scripts/bench_spec.py [--rounds 3] [--threads 1] [--tokens 160] [--clients 1,4] [--kv]
        [--sets grounded,prose,sampled] [--servers ...] [--model FILE] [--draft FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "src"))

import bench_servers  # noqa: E402
from bench_compare import gemma_model, log, quiet  # noqa: E402
from build_peers import peer_dir  # noqa: E402

NAMES = [
    "read_config",
    "parse_line",
    "load_table",
    "merge_rows",
    "count_words",
    "split_path",
    "fetch_page",
    "clean_text",
    "save_report",
    "find_user",
    "sort_items",
    "build_index",
]
WORDS = (
    "river stone lantern meadow harbor violin copper garden thunder orchard pepper candle saddle marble "
    "falcon willow quartz ember canyon velvet"
).split()
ANIMALS = ["otter", "heron", "badger", "lynx", "beetle", "walrus", "sparrow", "gecko"]
DEEDS = ["opens a bakery", "learns to sail", "loses a map", "builds a clock", "plants a forest", "finds a key"]


def code_prompt(rng: random.Random) -> str:
    old, new, helper, other = rng.sample(NAMES, 4)
    code = f"""import json


def {helper}(line):
    name, _, value = line.partition("=")
    return name.strip(), value.strip()


def {old}(path):
    settings = {{}}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip() and not line.startswith("#"):
                name, value = {helper}(line)
                settings[name] = value
    return settings


def {other}(path, settings):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(settings, handle, indent=2)
"""
    return (
        f"Here is a Python file:\n\n```python\n{code}```\n\nRename the function {old} to {new} and change "
        f"nothing else. The whole file after the change:\n\n```python\n"
    )


def passage_prompt(rng: random.Random) -> str:
    sentences = [
        f"The {a} {b} stood by the {c} while the {d} {e} waited near the {f}."
        for a, b, c, d, e, f in (rng.sample(WORDS, 6) for _ in range(5))
    ]
    text = " ".join(sentences)
    return f"Repeat the following passage word for word.\n\nPassage: {text}\n\nRepeated passage: {sentences[0][:12]}"


def list_prompt(rng: random.Random) -> str:
    items = [f"{i + 1}. {' '.join(rng.sample(WORDS, 3))}" for i in range(12)]
    return (
        "Here is a shopping list:\n" + "\n".join(items) + "\n\nThe same list with every item quoted "
        'in double quotes:\n1. "'
    )


def prose_prompt(rng: random.Random) -> str:
    return f"Write a short story about a {rng.choice(ANIMALS)} who {rng.choice(DEEDS)}.\n\nOnce upon a time,"


# free prose that does not repeat itself: greedy decoding of a small model loops, sampling does not
SAMPLING = {"sampled": {"temperature": 0.8, "top_k": 40, "seed": 1234}}


def prompt_sets(round_no: int, count: int) -> dict[str, list[str]]:
    """`count` distinct prompts of each set (at least 3), fresh for each round."""
    rng = random.Random(1000 + round_no)
    kinds = (code_prompt, passage_prompt, list_prompt)
    count = max(count, 3)
    return {
        "grounded": [kinds[i % 3](rng) for i in range(count)],
        "prose": [prose_prompt(rng) for _ in range(count)],
        "sampled": [prose_prompt(rng) for _ in range(count)],
    }


PAIRS = (
    ("r1local+ngram", "r1local"),
    ("r1local+ngram", "llama-server+ngram"),
    ("llama-server+ngram", "llama-server"),
    ("r1local+draft", "r1local"),
    ("r1local+draft", "llama-server+draft"),
    ("llama-server+draft", "llama-server"),
    ("r1local", "llama-server"),
)


def servers(model: Path, args) -> dict[str, bench_servers.Peer]:
    bin_dir = peer_dir(args.peer_version) / "bin"
    ours, theirs = bench_servers.peers(
        model, parallel=args.parallel, threads=args.threads, ctx_per_slot=args.ctx, peer_bin=bin_dir
    )[:2]
    lookup = ["--spec", "ngram", "--draft-max", str(args.draft_max)]
    peer_lookup = ["--spec-type", args.peer_spec, *args.peer_args.split()]
    drafted = ["--draft", str(args.draft), "--draft-max", str(args.draft_max)]
    peer_drafted = ["-md", str(args.draft), "--spec-draft-n-max", str(args.draft_max), "-td", str(args.threads)]

    return {
        "r1local": ours,
        "r1local+ngram": ours.variant("ngram", lookup),
        "r1local+draft": ours.variant("draft", drafted),
        "llama-server": theirs,
        "llama-server+ngram": theirs.variant("ngram", peer_lookup),
        "llama-server+draft": theirs.variant("draft", peer_drafted),
    }


def decode_rate(result: bench_servers.LoadResult) -> float:
    tokens = sum(t.tokens - 1 for t in result.timings)
    seconds = sum(t.end - t.start - t.ttft for t in result.timings)
    return tokens / seconds if seconds > 0 else 0.0


def lookup_rounds(model: Path, args, log_dir: Path) -> dict:
    """{set: {clients: {server: [decode tok/s per round]}}}, rounds alternating the servers."""
    peers = {name: peer for name, peer in servers(model, args).items() if name in args.servers}
    rates: dict = {}
    for round_no in range(args.rounds):
        sets = {k: v for k, v in prompt_sets(round_no, max(args.clients)).items() if k in args.sets}
        for name, peer in peers.items():
            quiet(args.quiet)
            with bench_servers.running(peer, log=log_dir / f"{name}.log") as (base, _pid):
                for set_name, prompts in sets.items():
                    for clients in args.clients:
                        # one client: three requests in turn; more: one distinct request each
                        own = [prompts[:3]] if clients == 1 else [[p] for p in prompts[:clients]]
                        load = bench_servers.load(
                            base,
                            peer,
                            own,
                            max_tokens=args.tokens,
                            sampling=SAMPLING.get(set_name),
                            chat=args.route == "chat",
                        )
                        rate = decode_rate(load) if clients == 1 else load.tokens_per_s
                        rates.setdefault(set_name, {}).setdefault(clients, {}).setdefault(name, []).append(rate)
                        log(f"round {round_no + 1} {name:20s} {set_name:8s} {clients} client(s): {rate:6.1f} tok/s")
    return rates


def kv_figures(model: Path, args) -> dict:
    """KV bytes per token, decode speed and top-1 agreement with f16 for each cache type."""
    import numpy as np

    from r1local.engine.bindings import C
    from r1local.engine.model import Model
    from r1local.engine.native import NativeModel
    from r1local.engine.params import SamplingParams

    prompt = prose_prompt(random.Random(7))
    n_ctx = 1024
    figures: dict = {t: {"decode": []} for t in ("f16", "q8_0", "q4_0")}
    for _ in range(args.rounds):
        for kv_type, row in figures.items():
            with Model.load(model, n_ctx=n_ctx, n_threads=args.threads, kv_type=kv_type) as loaded:
                kv = sum(kinds.get("KV", 0) for kinds in loaded.placement.buffers.values())
                row["kv_bytes_per_token"] = kv / n_ctx
                done = (
                    loaded.complete(
                        prompt, params=SamplingParams(temperature=0, max_tokens=args.tokens, ignore_eos=True)
                    )
                    .result()
                    .done
                )
                row["decode"].append(done.timings.generation_tokens_per_s)
                log(f"kv {kv_type}: {row['kv_bytes_per_token']:.0f} B/token, {row['decode'][-1]:.1f} tok/s")
    with Model.load(model, n_ctx=n_ctx, n_threads=args.threads) as loaded:  # gemma's own greedy text
        result = loaded.complete(prompt, params=SamplingParams(temperature=0, max_tokens=512, ignore_eos=True)).result()
        n_prompt = len(loaded.tokenize(prompt, add_special=True))
        text = loaded.tokenize(prompt + result.content, add_special=True)[: n_prompt + 512]

    def top1(kv_type: str) -> np.ndarray:
        native = NativeModel(
            model,
            n_ctx_seq=n_ctx,
            n_seq=1,
            n_gpu_layers=0,
            n_threads=args.threads,
            n_batch=n_ctx,
            kv_type=kv_type,
            flash_attn="on",
        )
        batch = C.llama_batch_init(n_ctx, 0, 1)
        try:
            for i, token in enumerate(text):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, i, 1, True
                batch.seq_id[i][0] = 0
            batch.n_tokens = len(text)
            assert C.llama_decode(native.ctx, batch) == 0
            logits = np.ctypeslib.as_array(C.llama_get_logits(native.ctx), shape=(len(text), native.n_vocab))
            return logits.argmax(axis=1)[-512:].copy()
        finally:
            C.llama_batch_free(batch)
            native.close()

    reference = top1("f16")
    for kv_type, row in figures.items():
        row["top1_agreement"] = float((top1(kv_type) == reference).mean())
        row["decode_median"] = statistics.median(row["decode"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=4, help="slots per server")
    parser.add_argument("--ctx", type=int, default=2048, help="context per slot")
    parser.add_argument("--tokens", type=int, default=160, help="greedy tokens per request")
    parser.add_argument("--clients", default="1", help="concurrent clients, comma-separated (1,4,8)")
    parser.add_argument("--draft-max", type=int, default=16)
    parser.add_argument("--model", type=Path, default=None, help="the target GGUF (default: gemma-3-270m Q4_K_M)")
    parser.add_argument("--draft", type=Path, default=None, help="a draft GGUF for the +draft servers")
    parser.add_argument("--peer-spec", default="ngram-simple", help="llama-server's --spec-type")
    parser.add_argument("--peer-args", default="", help="more llama-server flags (--spec-ngram-simple-size-n 4 ...)")
    parser.add_argument("--peer-version", default=None, help="llama-cpp-python version of the peer build")
    parser.add_argument(
        "--servers",
        default="r1local,r1local+ngram,llama-server,llama-server+ngram",
        help="which servers to run, comma-separated (also r1local+draft, llama-server+draft with --draft)",
    )
    parser.add_argument("--sets", default="grounded,prose,sampled", help="prompt sets, comma-separated")
    parser.add_argument("--route", choices=("chat", "raw"), default="chat", help="chat messages or raw completions")
    parser.add_argument("--quiet", type=float, default=60, help="seconds to wait for idle CPUs before each server")
    parser.add_argument("--kv", action="store_true", help="measure the KV cache types too")
    parser.add_argument("--no-lookup", action="store_true", help="skip the n-gram lookup rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_spec.json")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    args.servers = args.servers.split(",")
    args.sets = args.sets.split(",")
    model = args.model or gemma_model()
    log_dir = Path("/tmp/r1local-bench-spec")
    log_dir.mkdir(exist_ok=True)
    report: dict = {"model": model.name, "threads": args.threads, "rounds": args.rounds, "tokens": args.tokens}
    if not args.no_lookup:
        rates = lookup_rounds(model, args, log_dir)
        report["lookup"] = rates
        for set_name, by_clients in rates.items():
            for clients, by_server in by_clients.items():
                med = {name: statistics.median(v) for name, v in by_server.items()}
                ratios = [(a, b) for a, b in PAIRS if a in med and b in med]
                # the ratio of the medians, then the median of the rounds' own ratios (a round's
                # servers ran minutes apart, so the second shrugs off load that comes and goes)
                print(
                    f"{set_name} prompts, {clients} client(s): "
                    + ", ".join(f"{k} {v:.1f}" for k, v in med.items())
                    + "".join(
                        f"; {a}/{b} {med[a] / med[b]:.2f}x "
                        f"(rounds {statistics.median(x / y for x, y in zip(by_server[a], by_server[b], strict=True)):.2f}x)"
                        for a, b in ratios
                    )
                )
    if args.kv:
        report["kv"] = kv_figures(model, args)
        for kv_type, row in report["kv"].items():
            print(
                f"KV {kv_type}: {row['kv_bytes_per_token']:.0f} bytes/token "
                f"({row['kv_bytes_per_token'] / report['kv']['f16']['kv_bytes_per_token']:.2f}x f16), decode "
                f"{row['decode_median'] / report['kv']['f16']['decode_median']:.2f}x f16, "
                f"top-1 agreement with f16 {row['top1_agreement']:.1%}"
            )
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
