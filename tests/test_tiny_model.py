"""The tiny test models are real GGUFs: llama.cpp loads them, tokenises R1 prompts with the real
tokenizer and generates varied text."""

from __future__ import annotations

import itertools

import pytest
from llama_cpp import Llama

from r1local.engine.template import ChatTemplate
from r1local.gguf_meta import read_gguf


def load(path) -> Llama:
    return Llama(model_path=str(path), n_ctx=512, n_threads=1, seed=0, verbose=False)


@pytest.fixture(scope="module")
def llm(tiny_model) -> Llama:
    return load(tiny_model)


def greedy(llm: Llama, prompt: str, n: int) -> list[int]:
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.reset()
    return list(itertools.islice(llm.generate(tokens, temp=0.0), n))


def test_llama_cpp_sees_the_metadata_we_wrote(llm, tiny_model):
    info = read_gguf(tiny_model)
    assert llm.metadata["general.architecture"] == "qwen2"
    assert llm.n_vocab() == info.vocab_size == 152064
    assert int(llm.metadata["qwen2.context_length"]) == info.context_length
    assert llm.n_embd() == info.embedding_length
    assert (llm.token_bos(), llm.token_eos()) == (info.bos_token_id, info.eos_token_id)
    assert llm.metadata["tokenizer.chat_template"] == info.chat_template


def test_r1_prompt_tokenises_with_single_special_tokens(llm, tiny_model):
    info = read_gguf(tiny_model)
    special = {
        s: llm.tokenize(s.encode(), add_bos=False, special=True)
        for s in ["<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>"]
    }
    assert all(len(ids) == 1 for ids in special.values()), special
    bos = llm.detokenize([info.bos_token_id], special=True).decode()
    eos = llm.detokenize([info.eos_token_id], special=True).decode()
    assert (bos, eos) == ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")

    prompt = ChatTemplate(info.chat_template, bos, eos).render([{"role": "user", "content": "Hi there"}])
    ids = llm.tokenize(prompt.text.encode(), add_bos=False, special=True)
    text_ids = llm.tokenize(b"Hi there", add_bos=False)
    newline = llm.tokenize(b"\n", add_bos=False)
    assert ids == [
        *special["<｜begin▁of▁sentence｜>"],
        *special["<｜User｜>"],
        *text_ids,
        *special["<｜Assistant｜>"],
        *special["<think>"],
        *newline,
    ]


def test_generation_is_varied_and_depends_on_the_weights(llm, tiny_model_b):
    prompt = "<｜begin▁of▁sentence｜><｜User｜>Tell me a story.<｜Assistant｜><think>\n"
    out = greedy(llm, prompt, 48)
    assert len(set(out)) >= 24, out  # random weights, but not stuck on a few tokens
    assert greedy(llm, prompt, 48) == out  # greedy is deterministic
    other = greedy(load(tiny_model_b), prompt, 48)
    assert other != out
