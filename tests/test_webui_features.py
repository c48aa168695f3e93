"""The chat page's features in Debian's Chromium, at a desktop's 1280 px and a phone's 390 px: the
sidebar behind a button on narrow screens, copy buttons, edit-and-resend and regenerate, settings kept
per conversation and sent, the figures after an answer, the picker's details, a failed turn kept but
never resent, rename, delete, search, export and import, bordered tables and the empty page's hint.
Replies come from the tiny model or from an upstream that echoes the user (chosen replies)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import httpx
import pytest
from browser import echo_upstream, launched_browser
from serving import TEST_SETTINGS, isolated_store, running_server

ECHO = "echo/echo"
WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    with echo_upstream() as upstream:
        settings = replace(TEST_SETTINGS, models=(str(tiny_model),), upstreams=(("echo", f"{upstream}/v1"),), ctx=1024)
        with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as url:
            yield url


@pytest.fixture(params=list(WIDTHS))
def page(request, server):
    """The page at each width, with clipboard access and every chat request's body recorded."""
    width, height = WIDTHS[request.param]
    with launched_browser() as browser:
        context = browser.new_context(
            viewport={"width": width, "height": height}, permissions=["clipboard-read", "clipboard-write"]
        )
        page = context.new_page()
        page.sent = []
        page.on("request", lambda r: r.url.endswith("/v1/chat/completions") and page.sent.append(r.post_data_json))
        page.goto(server, wait_until="load")
        page.wait_for_function(f"() => [...document.querySelectorAll('#model option')].some(o => o.value === '{ECHO}')")
        page.narrow = width < 700
        yield page
        context.close()


def sidebar(page):
    """Open the conversation list where it hides behind the ☰ button."""
    if page.narrow and "sidebar-open" not in (page.get_attribute("body", "class") or ""):
        page.click("#menu")
        page.wait_for_timeout(300)  # the slide-in


def ask(page, text: str, model: str = ECHO):
    count = page.locator(".msg.assistant").count()
    page.select_option("#model", model)
    page.fill("#prompt", text)
    page.click("#send")
    page.wait_for_function(f"() => document.querySelectorAll('.msg.assistant').length === {count + 1}")
    page.wait_for_selector("#send:not([hidden])", timeout=60_000)
    return page.locator(".msg").last


def inside_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"] + 1


def test_sidebar_collapses_behind_a_button_on_narrow_screens(page):
    if not page.narrow:
        assert inside_viewport(page, "#sidebar") and not page.is_visible("#menu")
        return
    assert page.is_visible("#menu") and not inside_viewport(page, "#sidebar")
    ask(page, "first chat")
    page.click("#menu")
    page.wait_for_timeout(300)
    assert inside_viewport(page, "#sidebar")
    page.click("#new-chat")  # a phone can start a new chat, and the list slides away again
    page.wait_for_timeout(300)
    assert not inside_viewport(page, "#sidebar") and page.locator(".msg").count() == 0
    sidebar(page)
    page.locator("#conversations li button.open", has_text="first chat").click()
    page.wait_for_timeout(300)
    assert page.locator(".msg").count() == 2 and not inside_viewport(page, "#sidebar")
    # nothing of the page is wider than the phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_empty_page_hint_copy_buttons_and_bordered_tables(page):
    assert page.is_visible("#empty") and "Ask anything" in page.inner_text("#empty")
    reply = ask(page, "| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('hi')\n```")
    assert not page.is_visible("#empty")
    cell = reply.locator("td").first
    assert cell.evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"
    assert cell.evaluate("e => parseFloat(getComputedStyle(e).borderTopWidth)") >= 1
    reply.locator("pre button.copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == "print('hi')\n"
    assert reply.locator("pre button.copy").inner_text() == "Copied"
    page.locator(".msg.user .actions button.copy").click()
    assert page.evaluate("navigator.clipboard.readText()").startswith("| a | b |")


def test_edit_and_resend_then_regenerate(page):
    ask(page, "one")
    ask(page, "two")
    assert page.locator(".msg.user").first.locator("button", has_text="Edit").count() == 0  # the last turns only
    page.locator(".msg.user").last.locator("button", has_text="Edit").click()
    page.fill(".msg.user textarea.edit", "three")
    page.locator(".msg.user .edit-box button", has_text="Send").click()
    page.wait_for_function(
        "() => document.querySelector('.msg.assistant:last-child .body').textContent.trim() === 'three'"
    )
    page.wait_for_selector("#send:not([hidden])")
    assert [m["content"] for m in page.sent[-1]["messages"]] == ["one", "one", "three"]
    assert page.locator(".msg").count() == 4
    page.locator(".msg.assistant").last.locator("button", has_text="Regenerate").click()
    page.wait_for_function(
        "() => document.querySelectorAll('.msg').length === 4 && !document.querySelector('#send').hidden"
    )
    assert len(page.sent) == 4 and page.sent[-1]["messages"] == page.sent[-2]["messages"]
    assert page.locator(".msg.assistant").last.locator(".body").inner_text() == "three"


def test_settings_are_sent_and_kept_per_conversation(page):
    page.click("#settings-button")
    page.fill("#system", "Answer in French.")
    page.fill("#temperature", "0.3")
    page.fill("#top-p", "0.9")
    page.fill("#seed", "7")
    page.fill("#max-tokens", "50")
    page.fill("#think-budget", "16")
    ask(page, "hello")
    sent = page.sent[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}
    fields = ("temperature", "top_p", "seed", "max_tokens", "reasoning_budget_tokens")
    assert [sent[field] for field in fields] == [0.3, 0.9, 7, 50, 16]
    assert "think" not in sent  # on: the model's own default
    page.uncheck("#think")
    ask(page, "again")
    assert page.sent[-1]["think"] is False and "reasoning_budget_tokens" not in page.sent[-1]

    sidebar(page)
    page.click("#new-chat")  # a new conversation starts from the last settings, then goes its own way
    assert page.input_value("#temperature") == "0.3"
    page.fill("#temperature", "1")
    page.fill("#system", "")
    ask(page, "other")
    assert page.sent[-1]["temperature"] == 1 and page.sent[-1]["messages"][0]["role"] == "user"
    page.reload(wait_until="load")  # kept across a reload, per conversation
    sidebar(page)
    page.locator("#conversations li button.open", has_text="hello").click()
    page.wait_for_timeout(300)
    assert page.input_value("#temperature") == "0.3" and page.input_value("#system") == "Answer in French."
    assert not page.is_checked("#think")


def test_figures_after_an_answer_and_the_pickers_details(page, server, tiny_model):
    page.click("#settings-button")
    page.fill("#max-tokens", "12")
    note = ask(page, "Count to three.", model=tiny_model.stem).locator(".note").inner_text()
    assert re.search(
        r"12 tokens( \(\d+ thinking\))? · [\d.]+ tokens/s · first token after [\d.]+ s · "
        r"prompt \d+ tokens",
        note,
    ), note

    # the picker, refreshed after the answer: the model's details, and loaded since it just answered
    tag = next(m for m in httpx.get(f"{server}/api/tags").json()["models"] if m["name"] == tiny_model.stem)
    option = page.locator(f"#model option[value='{tiny_model.stem}']")
    details = tag["details"]
    page.wait_for_function(
        f"() => document.querySelector(\"#model option[value='{tiny_model.stem}']\").textContent.endsWith('· loaded')"
    )
    size = f"{tag['size'] / 2**20:.0f} MiB"
    assert option.inner_text() == (
        f"{tiny_model.stem} · {details['parameter_size']} · "
        f"{details['quantization_level']} · {size} · llama.cpp · loaded"
    )
    assert page.locator(f"#model option[value='{ECHO}']").inner_text() == f"{ECHO} · upstream"

    # a model that is not loaded says so
    httpx.post(f"{server}/api/generate", json={"model": tiny_model.stem, "keep_alive": 0}).raise_for_status()
    page.reload(wait_until="load")
    page.wait_for_function(f"() => document.querySelector(\"#model option[value='{tiny_model.stem}']\")")
    assert option.inner_text().endswith("· llama.cpp · not loaded")


def test_a_failed_turn_is_shown_kept_and_never_resent(page):
    ask(page, "hello")
    failed = ask(page, "please FAIL now")
    assert re.fullmatch(r"Failed: .*the echo broke", failed.locator(".note").inner_text())
    assert "not sent again" in page.locator(".msg.user").last.locator(".note").inner_text()
    assert page.locator(".msg.assistant").last.locator("button", has_text="Retry").count() == 1
    ask(page, "after")
    assert [m["content"] for m in page.sent[-1]["messages"]] == ["hello", "hello", "after"]
    page.reload(wait_until="load")  # the conversation, failure included, survives
    page.wait_for_function("() => document.querySelectorAll('.msg').length === 6")
    assert page.locator(".msg.failed").count() == 2


def test_rename_delete_search_export_and_import(page, tmp_path):
    ask(page, "apples are red")
    sidebar(page)
    page.click("#new-chat")
    ask(page, "bananas are yellow")
    sidebar(page)
    page.fill("#search", "apple")  # titles and text
    assert page.locator("#conversations li button.open").all_inner_texts() == ["apples are red"]
    page.fill("#search", "")
    row = page.locator("#conversations li").first
    row.locator("button.rename").click()
    page.fill("#conversations .rename-input", "Fruit")
    page.press("#conversations .rename-input", "Enter")
    assert page.locator("#conversations li button.open").first.inner_text() == "Fruit"

    with page.expect_download() as download:
        page.click("#export-json")
    exported = json.loads(open(download.value.path()).read())
    assert exported["title"] == "Fruit" and [m["content"] for m in exported["messages"]] == ["bananas are yellow"] * 2
    with page.expect_download() as download:
        page.click("#export-md")
    assert download.value.suggested_filename == "Fruit.md"
    markdown = open(download.value.path()).read()
    assert markdown == "# Fruit\n\n## User\n\nbananas are yellow\n\n## Assistant\n\nbananas are yellow\n"

    page.locator("#conversations li", has_text="Fruit").locator("button.delete").click()
    assert page.locator("#conversations li button.open").all_inner_texts() == ["apples are red"]
    (tmp_path / "fruit.md").write_text(markdown)
    (tmp_path / "fruit.json").write_text(json.dumps(exported))
    page.set_input_files("#import-file", [str(tmp_path / "fruit.json"), str(tmp_path / "fruit.md")])
    page.wait_for_function("() => document.querySelectorAll('#conversations li').length === 3")
    assert page.locator("#conversations li button.open").all_inner_texts() == ["Fruit", "Fruit", "apples are red"]
    assert page.locator(".msg .body").all_inner_texts() == ["bananas are yellow"] * 2
    (tmp_path / "bad.json").write_text('{"messages": "no"}')
    page.set_input_files("#import-file", str(tmp_path / "bad.json"))
    page.wait_for_selector("#status.error")
    assert "holds no conversation" in page.inner_text("#status")
