"""The built-in chat page: served at / to browsers (and under /ui/), whole offline, open without the
API key while the API stays closed, off with --no-ui; and driven in a real headless Chromium: send a
message, watch reasoning and answer stream, stop a generation, switch model."""

from __future__ import annotations

import re
from dataclasses import replace
from importlib import resources

import httpx
import pytest
from browser import launched_browser
from serving import TEST_SETTINGS, isolated_store, running_server

HTML = {"Accept": "text/html,application/xhtml+xml"}
WEBUI = resources.files("r1local") / "webui"


@pytest.fixture(scope="module")
def two_models(tiny_model, tiny_model_b, tmp_path_factory):
    settings = replace(TEST_SETTINGS, models=(str(tiny_model), str(tiny_model_b)), max_loaded=2, ctx=2048)
    with isolated_store(tmp_path_factory.mktemp("store")):
        with running_server(settings) as url:
            yield url


def page_assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/ui/[^"]+)"', html)


def test_page_for_browsers_line_for_clients_and_every_asset_local(two_models):
    page = httpx.get(two_models, headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(two_models).text == "r1local is running"  # what Ollama clients probe for
    assets = page_assets(page.text)
    assert "/ui/app.js" in assets and "/ui/vendor/katex.min.js" in assets
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page.text)  # no CDN: works offline
    for path in assets:
        assert httpx.get(two_models + path).status_code == 200, path
    fonts = re.findall(r"url\((fonts/[^)]+\.woff2)\)", (WEBUI / "vendor" / "katex.min.css").read_text())
    assert fonts and all((WEBUI / "vendor" / f).is_file() for f in fonts)


def test_page_needs_no_key_but_the_api_does(tiny_model, tmp_path):
    settings = replace(TEST_SETTINGS, api_key="secret")
    with isolated_store(tmp_path), running_server(settings) as url:
        assert httpx.get(url, headers=HTML).status_code == 200
        assert httpx.get(f"{url}/ui/app.js").status_code == 200
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/ui/../v1/models").status_code == 401


def test_no_ui(tmp_path):
    with isolated_store(tmp_path), running_server(replace(TEST_SETTINGS, web_ui=False)) as url:
        assert httpx.get(url, headers=HTML).text == "r1local is running"
        assert httpx.get(f"{url}/ui/app.js").status_code == 404


@pytest.fixture
def browser_page(two_models):
    with launched_browser() as browser:
        page = browser.new_page()
        page.goto(two_models, wait_until="load")  # the first visit warms the browser and the server
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})  # so every file is fetched again
        page.reload(wait_until="load")
        yield page


def test_chat_in_a_real_browser(browser_page, tiny_model, tiny_model_b):
    page = browser_page
    # the browser's own clock, from navigation start to the load event, every file fetched uncached
    load_ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    assert 0 < load_ms < 2000, load_ms  # about 0.35 s (median); generous, the machine is shared
    page.wait_for_function("() => document.querySelectorAll('#model option').length === 2")
    assert page.input_value("#model") == tiny_model.stem

    # thinking on: reasoning streams into the collapsible block, then folds as "Thought for N s"
    page.click("#settings-button")
    page.fill("#max-tokens", "24")
    page.fill("#prompt", "What is 2+2?")
    page.keyboard.press("Enter")
    page.wait_for_selector(".msg.assistant details.thought:not([hidden])")
    page.wait_for_selector("#send:not([hidden])", timeout=60_000)
    thought = page.locator(".msg.assistant details.thought").last
    assert re.fullmatch(r"Thought for \d+ s", thought.locator("summary").inner_text())
    assert thought.get_attribute("open") is None  # folded once the answer began
    assert thought.locator(".reasoning").text_content().strip()
    assert "token limit" in page.locator(".msg.assistant .note").last.inner_text()

    # thinking off, no limit: the answer streams; Stop ends it and keeps what came
    page.uncheck("#think")
    page.fill("#max-tokens", "")
    page.select_option("#model", tiny_model_b.stem)
    page.fill("#prompt", "Tell me a long story.")
    page.click("#send")
    page.wait_for_function("() => document.querySelector('.msg.assistant:last-child .body').textContent.length > 20")
    page.click("#stop")
    page.wait_for_selector("#send:not([hidden])")
    last = page.locator(".msg.assistant").last
    assert last.locator(".note").inner_text().startswith("Stopped.")
    assert last.locator(".body").inner_text().strip()

    # the conversation survives a reload, with the model it used
    page.reload(wait_until="load")
    page.wait_for_function("() => document.querySelectorAll('.msg').length === 4")
    assert page.input_value("#model") == tiny_model_b.stem


RENDER = """async (text) => { const { renderMarkdown } = await import('/ui/markdown.js');
    const box = document.createElement('div'); box.append(renderMarkdown(text)); return box.innerHTML; }"""


def test_markdown_math_and_code_render(browser_page):
    html = browser_page.evaluate(
        RENDER,
        "The answer is \\[\\boxed{4}\\] and $x^2$.\n\n"
        "```python\nprint(2 + 2)  # $not math$\n```\n"
        '<img src=x onerror="window.hacked=1">',
    )
    assert 'class="katex-display"' in html and "boxed" in html
    assert "<code" in html and "$not math$" in html  # code is left alone
    assert "onerror" not in html and browser_page.evaluate("window.hacked") is None
