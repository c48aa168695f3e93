"""Clients written for llama-server, unchanged: `model` missing or naming a model this server does
not hold, /completion's full answer (token ids, probabilities, settings, truncated, timings),
token-id and mixed prompts, logit_bias on every generation route, the X-Api-Key header, an
empty embedding input and llama-server's embedding prompt objects."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import httpx
import openai
import pytest
from serving import (
    TEST_SETTINGS,
    isolated_store,
    openai_client,
    running_server,
    serving,
)

MODEL = "tiny-r1-qwen"
PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model) as base:
        yield base


def completion(url: str, **body) -> dict:
    response = httpx.post(f"{url}/completion", json={"temperature": 0, **body}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_missing_or_foreign_model_is_the_default_one_and_the_reply_names_it(url):
    client = openai_client(url)
    chat = client.chat.completions.create(
        model="gpt-3.5-turbo", max_tokens=4, messages=[{"role": "user", "content": "Hi"}]
    )
    assert chat.model == MODEL and chat.usage.completion_tokens == 4
    text = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=PROMPT, max_tokens=3)
    assert text.model == MODEL
    vectors = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert vectors.model == MODEL and len(vectors.data) == 2
    for path, body in (
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}),
        ("/v1/completions", {"prompt": PROMPT}),
        ("/v1/embeddings", {"input": "x"}),
        ("/completion", {"prompt": PROMPT}),
        ("/tokenize", {"content": "x"}),
    ):
        response = httpx.post(f"{url}{path}", json={"max_tokens": 2, "n_predict": 2, **body}, timeout=60)
        assert response.status_code == 200, (path, response.text)
        assert response.json().get("model", MODEL) == MODEL
    for name in ("/etc/passwd", "../models/tiny-r1-qwen.gguf"):  # never read as a path
        assert client.completions.create(model=name, prompt=PROMPT, max_tokens=1).model == MODEL
    # a model r1local knows but has not downloaded still says how to get it
    missing = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "r1:7b", "messages": [{"role": "user", "content": "x"}]}
    )
    assert missing.status_code == 404 and "r1local pull" in missing.json()["error"]["message"]


def test_truncated_only_when_the_context_filled(url):
    capped = completion(url, prompt=PROMPT, n_predict=8, ignore_eos=True)
    assert capped["stop_type"] == "limit" and capped["truncated"] is False and capped["tokens_predicted"] == 8
    full = completion(url, prompt=PROMPT, ignore_eos=True)  # until the 512-token context is full
    assert full["stop_type"] == "limit" and full["truncated"] is True
    assert full["tokens_evaluated"] + full["tokens_predicted"] == 512


def test_completion_answers_with_tokens_probabilities_settings_and_timings(url):
    whole = completion(url, prompt=PROMPT, n_predict=6, ignore_eos=True, n_probs=3, return_tokens=True, seed=7)
    tokens = whole["tokens"]
    assert len(tokens) == 6 and all(isinstance(t, int) for t in tokens)
    assert httpx.post(f"{url}/detokenize", json={"tokens": tokens}).json()["content"] == whole["content"]
    probs = whole["completion_probabilities"]
    assert [p["id"] for p in probs] == tokens and "".join(p["token"] for p in probs) == whole["content"]
    for p in probs:
        assert len(p["top_logprobs"]) == 3 and p["logprob"] <= 0
        assert p["top_logprobs"][0]["id"] == p["id"]  # greedy: the likeliest is the one taken
        assert {"id", "token", "bytes", "logprob"} <= set(p["top_logprobs"][0])
    settings = whole["generation_settings"]
    assert settings["n_predict"] == 6 and settings["temperature"] == 0 and settings["seed"] == 7
    assert settings["n_probs"] == 3 and settings["ignore_eos"] is True
    assert whole["has_new_line"] == ("\n" in whole["content"])
    timings = whole["timings"]
    assert timings["predicted_n"] == 6 and timings["cache_n"] == whole["tokens_cached"]
    assert timings["predicted_per_token_ms"] == pytest.approx(timings["predicted_ms"] / 6)
    assert timings["prompt_per_token_ms"] == pytest.approx(timings["prompt_ms"] / timings["prompt_n"])
    # the same, streamed: each piece of text carries its tokens' ids and probabilities
    events = []
    with httpx.stream(
        "POST",
        f"{url}/completion",
        timeout=60,
        json={
            "prompt": PROMPT,
            "n_predict": 6,
            "ignore_eos": True,
            "n_probs": 3,
            "return_tokens": True,
            "temperature": 0,
            "stream": True,
        },
    ) as response:
        events = [
            httpx.Response(200, content=line[6:]).json() for line in response.iter_lines() if line.startswith("data: ")
        ]
    pieces = events[:-1]
    assert [t for e in pieces for t in e["tokens"]] == tokens
    assert [p["id"] for e in pieces for p in e.get("completion_probabilities", [])] == tokens
    assert events[-1]["stop"] and events[-1]["timings"]["predicted_n"] == 6


def test_post_sampling_probs_are_those_of_the_distribution_drawn_from(url):
    base = {"prompt": PROMPT, "n_predict": 5, "ignore_eos": True, "n_probs": 4, "seed": 3, "temperature": 1.0}
    untruncated = {**base, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    before = completion(url, **untruncated)["completion_probabilities"]
    after = completion(url, **untruncated, post_sampling_probs=True)["completion_probabilities"]
    # nothing cut, temperature 1: the distribution drawn from is the model's own
    assert [p["id"] for p in after] == [p["id"] for p in before]
    for pre, post in zip(before, after, strict=True):
        assert "logprob" not in post and post["prob"] == pytest.approx(math.exp(pre["logprob"]), rel=1e-3)
        assert [a["id"] for a in post["top_probs"]] == [a["id"] for a in pre["top_logprobs"]]
    # top_k 2 at temperature 0.5: two candidates whose probabilities add up to 1, the one drawn among them
    cut = completion(url, **{**base, "top_k": 2, "temperature": 0.5}, post_sampling_probs=True)
    for p in cut["completion_probabilities"]:
        assert len(p["top_probs"]) == 2 and sum(a["prob"] for a in p["top_probs"]) == pytest.approx(1.0)
        assert p["id"] in [a["id"] for a in p["top_probs"]] and 0 < p["prob"] <= 1
        assert all({"id", "token", "bytes", "prob"} <= set(a) for a in p["top_probs"])


def test_response_fields_keep_only_the_paths_asked_for_and_the_fingerprint_is_a_build_tag(url):
    fields = ["content", "generation_settings/n_predict", "timings/predicted_n", "no/such"]
    whole = completion(url, prompt=PROMPT, n_predict=4, ignore_eos=True, response_fields=fields)
    assert set(whole) == set(fields[:3]) and whole["generation_settings/n_predict"] == 4
    assert whole["timings/predicted_n"] == 4 and isinstance(whole["content"], str)
    with httpx.stream(
        "POST", f"{url}/completion", json={"prompt": PROMPT, "n_predict": 3, "stream": True, "response_fields": fields}
    ) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert set(events[-1]) == set(fields[:3]) and events[-1]["timings/predicted_n"] == 3
    chat = openai_client(url).chat.completions.create(
        model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "Hi"}]
    )
    assert chat.system_fingerprint.startswith("b")  # llama-server's clients read "b<build>"


def test_responses_stream_carries_llama_servers_telemetry_when_asked(url):
    def events(**extra) -> list[dict]:
        body = {"input": "This is a test " * 10, "max_output_tokens": 6, "stream": True, **extra}
        with httpx.stream("POST", f"{url}/responses", json=body, timeout=120) as response:
            return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]

    told = events(timings_per_token=True, return_progress=True)
    kinds = [e["type"] for e in told]
    progress = [e for e in told if "prompt_progress" in e]
    assert len(progress) == 1 and progress[0]["type"] == "response.in_progress"
    reported = progress[0]["prompt_progress"]
    assert reported["total"] > 20 and reported["processed"] >= reported["cache"] and reported["time_ms"] > 0
    deltas = [e for e in told if e["type"].endswith("_text.delta")]
    assert deltas and kinds.index("response.in_progress", 2) < kinds.index(deltas[0]["type"])
    counts = [e["timings"]["predicted_n"] for e in deltas]
    assert counts == sorted(counts) and counts[-1] <= 6 and all("prompt_per_second" in e["timings"] for e in deltas)
    completed = told[-1]
    assert completed["type"] == "response.completed"
    assert completed["timings"]["predicted_n"] == completed["response"]["usage"]["output_tokens"] == 6
    assert completed["timings"]["prompt_n"] + completed["timings"]["cache_n"] == reported["total"]
    plain = events()
    assert not any("prompt_progress" in e or ("timings" in e and e["type"] != "response.completed") for e in plain)


def test_token_id_and_mixed_prompts(url):
    head = httpx.post(f"{url}/tokenize", json={"content": "Once upon a", "add_special": True}).json()["tokens"]
    tail = httpx.post(f"{url}/tokenize", json={"content": " time"}).json()["tokens"]
    by_ids = completion(url, prompt=head + tail, n_predict=5, ignore_eos=True)
    mixed = completion(url, prompt=["Once upon a", *tail], n_predict=5, ignore_eos=True)
    wrapped = completion(url, prompt=[head + tail], n_predict=5, ignore_eos=True)
    assert by_ids["tokens_evaluated"] == len(head + tail) == mixed["tokens_evaluated"]
    assert by_ids["content"] == mixed["content"] == wrapped["content"]
    as_object = completion(url, prompt={"prompt_string": "Once upon a time"}, n_predict=5, ignore_eos=True)
    assert as_object["content"] == by_ids["content"]
    # several prompts: one answer each, in order, as llama-server answers them
    several = httpx.post(
        f"{url}/completion",
        json={
            "prompt": [head + tail, "Once upon a time", {"prompt_string": ["Once upon a", *tail]}],
            "n_predict": 5,
            "ignore_eos": True,
            "temperature": 0,
        },
        timeout=120,
    )
    assert several.status_code == 200, several.text
    answers = several.json()
    assert [a["index"] for a in answers] == [0, 1, 2]
    assert [a["content"] for a in answers] == [by_ids["content"]] * 3
    for bad in (
        [10**9],
        [-1],
        [],
        [[]],
        {"prompt_string": "x", "multimodal_data": ["AAAA"]},
        {"content": "x"},
        ["many"] * 17,
    ):
        response = httpx.post(f"{url}/completion", json={"prompt": bad, "n_predict": 2})
        assert response.status_code == 400 and response.json()["error"]["param"] == "prompt", bad
    streamed = httpx.post(f"{url}/completion", json={"prompt": ["a", "b"], "n_predict": 2, "stream": True})
    assert streamed.status_code == 400 and "Stream one prompt" in streamed.json()["error"]["message"]


def test_logit_bias_is_honoured_on_every_generation_route(url):
    plain = completion(url, prompt=PROMPT, n_predict=4, ignore_eos=True, return_tokens=True)
    first = plain["tokens"][0]
    banned = completion(
        url, prompt=PROMPT, n_predict=4, ignore_eos=True, return_tokens=True, logit_bias=[[first, False]]
    )
    assert banned["tokens"][0] != first and first not in banned["tokens"]
    favourite = httpx.post(f"{url}/tokenize", json={"content": " banana"}).json()["tokens"][0]
    piece = httpx.post(f"{url}/detokenize", json={"tokens": [favourite]}).json()["content"]
    forced = completion(
        url, prompt=PROMPT, n_predict=3, ignore_eos=True, return_tokens=True, logit_bias={str(favourite): 100}
    )
    assert forced["tokens"] == [favourite] * 3
    client = openai_client(url)
    text = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=3, temperature=0, logit_bias={str(favourite): 100}
    )
    assert text.choices[0].text == piece * 3
    chat = client.chat.completions.create(
        model=MODEL,
        max_tokens=3,
        temperature=0,
        logprobs=True,
        messages=[{"role": "user", "content": "Hi"}],
        logit_bias={str(favourite): 100},
    )
    assert [t.token for t in chat.choices[0].logprobs.content] == [piece] * 3


def test_empty_embedding_input_is_a_400(url):
    for empty in ([],):
        response = httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": empty})
        assert response.status_code == 400 and response.json()["error"]["param"] == "input"
    with pytest.raises(openai.BadRequestError):
        openai_client(url).embeddings.create(model=MODEL, input=[])


def test_embedding_inputs_take_llama_servers_prompt_objects_and_mixed_lists(url):
    def vectors(given):
        response = httpx.post(f"{url}/v1/embeddings", json={"input": given}, timeout=120)
        assert response.status_code == 200, response.text
        return [item["embedding"] for item in response.json()["data"]]

    parts = {"content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "world"}]}
    same = [pytest.approx(vectors("hello world")[0], abs=1e-5)]  # batched inputs differ in the last bits
    text, from_parts, from_string = vectors(["hello world", parts, {"prompt_string": "hello world"}])
    assert [text, from_parts, from_string] == same * 3
    assert vectors(parts) == same
    ids = httpx.post(f"{url}/tokenize", json={"content": "hello world", "add_special": True}).json()["tokens"]
    assert vectors(["hello world", ids]) == same * 2
    # ids and text mixed inside one prompt, alone or in a list: the text after an id gets no BOS
    assert vectors([ids[0], "hello world"]) == same
    assert vectors([[ids[0], "hello world"], "hello world"]) == same * 2
    assert vectors({"prompt_string": [ids[0], "hello world"]}) == same
    for bad in ([ids[0], ["nested"]], [ids[0], {"prompt_string": "x"}], [[]]):
        response = httpx.post(f"{url}/v1/embeddings", json={"input": bad})
        assert response.status_code == 400 and response.json()["error"]["param"] == "input", bad
    for bad in (
        {"content": "string"},
        {"content": [{"type": "unknown"}]},
        {"content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
    ):
        response = httpx.post(f"{url}/v1/embeddings", json={"input": bad})
        assert response.status_code == 400 and response.json()["error"]["param"] == "input", bad


def test_a_too_long_embedding_input_is_a_400_saying_too_large(url):
    response = httpx.post(f"{url}/v1/embeddings", json={"input": "This is a test " * 3000}, timeout=120)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "too large" in error["message"] and "at most" in error["message"], error  # llama-server's words and ours


def test_llama_servers_own_embedding_routes_answer_in_its_shape(url):
    body = {"input": ["hello world", "bye"]}
    openai_shaped = httpx.post(f"{url}/v1/embeddings", json=body, timeout=120).json()["data"]
    for path, given in (("/embedding", body), ("/embeddings", body), ("/embeddings", {"content": body["input"]})):
        response = httpx.post(f"{url}{path}", json=given, timeout=120)
        assert response.status_code == 200, response.text
        rows = response.json()
        assert [row["index"] for row in rows] == [0, 1]
        for row, item in zip(rows, openai_shaped, strict=True):  # one pooled vector per input, as a list of rows
            assert len(row["embedding"]) == 1 and row["embedding"][0] == pytest.approx(item["embedding"], abs=1e-5)
    assert httpx.post(f"{url}/embeddings", json={}).status_code == 400


def test_pooling_none_gives_a_raw_vector_per_token_on_embeddings_only(tiny_model, tmp_path_factory):
    with serving(tmp_path_factory, tiny_model, pooling="none") as base:
        text = "hello hello hello"
        n_tokens = len(httpx.post(f"{base}/tokenize", json={"content": text, "add_special": True}).json()["tokens"])
        response = httpx.post(f"{base}/embeddings", json={"input": text}, timeout=120)
        assert response.status_code == 200, response.text
        vectors = response.json()[0]["embedding"]
        assert len(vectors) == n_tokens > 1 and len({len(v) for v in vectors}) == 1
        assert all(abs(sum(x * x for x in v) - 1) > 1e-3 for v in vectors)  # not normalised, as llama-server's
        assert vectors[0] != vectors[-1]
        for path, body in (("/v1/embeddings", {"input": text}), ("/api/embed", {"model": MODEL, "input": text})):
            refused = httpx.post(f"{base}{path}", json=body, timeout=120)
            error = refused.json()["error"]  # OpenAI's shape, or Ollama's plain string
            assert refused.status_code == 400 and "--pooling none" in str(error), path


def test_x_api_key_is_an_alternative_to_authorization(tmp_path_factory):
    keyed = replace(TEST_SETTINGS, api_key="sesame")
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(keyed) as base:
        models = f"{base}/v1/models"
        assert httpx.get(models, headers={"X-Api-Key": "sesame"}).status_code == 200
        assert httpx.get(models, headers={"Authorization": "Bearer sesame"}).status_code == 200
        for headers in ({"X-Api-Key": "wrong"}, {}, {"Authorization": "Bearer wrong", "X-Api-Key": "nope"}):
            assert httpx.get(models, headers=headers).status_code == 401, headers
        # with no model to fall back on, a name that means nothing here is a 404
        unknown = httpx.post(
            f"{base}/v1/chat/completions",
            headers={"X-Api-Key": "sesame"},
            json={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "x"}]},
        )
        assert unknown.status_code == 404 and "Unknown model name" in unknown.json()["error"]["message"]
