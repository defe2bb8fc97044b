"""The search page in a real headless browser (Debian's chromium, driven by Playwright).

The demo FAQ tests use the packaged all-MiniLM-L6-v2 (marked `real`); the API key test
uses the tiny random BERT. Everything is done with the keyboard, as a person without a
mouse would: the question box has focus on load, Enter asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="the serve extra is not installed")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

from semsearch.config import SearchConfig  # noqa: E402
from semsearch.service.config import ServeConfig  # noqa: E402
from semsearch.service.server import build_service, serve_in_thread  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
KEY = "page-test-key"
TIMEOUT = 30_000  # ms


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT)
    yield opened
    context.close()


def _index(corpus: Path, out: Path, *options: str) -> Path:
    from semsearch.cli.main import app

    result = CliRunner().invoke(app, ["index", str(corpus), "-o", str(out), *options])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def demo_url(demo_index: Path) -> Iterator[str]:
    """The demo FAQ indexed with the default model (the README's demo index), served."""
    config = ServeConfig(port=0)
    with serve_in_thread(build_service(demo_index, config), config) as url:
        yield url


def _ask(page: Any, question: str) -> None:
    """Type into the focused box and press Enter, keyboard only."""
    assert page.evaluate("document.activeElement.id") == "question"
    page.keyboard.type(question)
    page.keyboard.press("Enter")


@pytest.mark.real
def test_demo_question_finds_the_pdf_answer(page: Any, demo_url: str) -> None:
    page.goto(demo_url + "/")
    assert page.title() == "semsearch · faq"  # the index folder's name
    _ask(page, "how can I get my notes out as PDF")
    first = page.locator("#results li.hit").first
    first.wait_for()
    assert first.get_attribute("data-id").startswith("export-pdf")
    assert "PDF" in first.locator(".matched").inner_text()
    assert "Export" in first.locator(".answer").inner_text()
    score = float(first.locator(".score").inner_text())
    assert 0.5 < score <= 1.0
    assert page.locator("#no-answer").is_hidden()
    assert page.locator("#results li.hit").count() == 5
    # keyboard: ArrowDown walks the answers, Escape returns to the question
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.id").startswith("export-pdf")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.classList.contains('hit')")
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.id") == "question"


@pytest.mark.real
def test_demo_no_confident_answer(page: Any, demo_url: str) -> None:
    page.goto(demo_url + "/")
    page.keyboard.type("what is the airspeed of an unladen swallow")
    page.keyboard.press("Tab")  # -> answers
    page.keyboard.press("Tab")  # -> threshold
    assert page.evaluate("document.activeElement.id") == "threshold"
    page.keyboard.type("0.9")
    page.keyboard.press("Enter")
    notice = page.locator("#no-answer")
    notice.wait_for(state="visible")
    assert "No confident answer" in notice.inner_text()
    assert "below the threshold 0.9" in notice.inner_text()
    assert page.locator("#results li").count() == 0
    page.locator("#weak li.hit").first.wait_for()  # the closest entries, asked for next
    assert page.locator("#weak li.hit").count() > 0  # and marked as such
    assert page.locator("#status").inner_text() == "No confident answer."


CSV = """id,question,answer
pw,How do I reset my password?,Use the reset link.
pdf,Can I export notes as PDF?,File > Export > PDF.
"""


def test_page_asks_for_the_api_key(page: Any, tiny_sbert: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "faq.csv"
    corpus.write_text(CSV, encoding="utf-8")
    folder = _index(corpus, tmp_path / "keyed", "--model", str(tiny_sbert))
    config = ServeConfig(port=0, api_key=KEY)
    search = SearchConfig(threshold="none")  # a tiny random model's own would hide the hits
    with serve_in_thread(build_service(folder, config, search), config) as url:
        page.goto(url + "/")
        _ask(page, "How do I reset my password?")
        page.locator("#keyform").wait_for(state="visible")
        _wait_focus(page, "apikey")
        page.keyboard.type("wrong-key")
        page.keyboard.press("Enter")
        page.locator("#key-reason", has_text="refused").wait_for()
        _wait_focus(page, "apikey")
        page.keyboard.type(KEY)
        page.keyboard.press("Enter")
        page.locator("#results li.hit").first.wait_for()
        assert page.locator("#results li.hit").first.get_attribute("data-id") == "pw"
        assert page.locator("#keyform").is_hidden()
        assert page.evaluate("document.activeElement.id") == "question"
        assert page.evaluate("sessionStorage.getItem('semsearch-api-key')") == KEY
        page.reload()  # the key is remembered for this tab
        _ask(page, "export as PDF")
        page.locator("#results li.hit[data-id=pdf]").wait_for()
        assert page.locator("#keyform").is_hidden()


def _wait_focus(page: Any, element_id: str) -> None:
    page.wait_for_function(
        f"document.activeElement && document.activeElement.id === {element_id!r}"
    )


def test_page_filters_with_its_box(page: Any, tiny_sbert: Path, tmp_path: Path) -> None:
    from tests.cli.test_where import write_corpus

    folder = _index(write_corpus(tmp_path), tmp_path / "filtered", "--model", str(tiny_sbert))
    config = ServeConfig(port=0)
    search = SearchConfig(threshold="none")
    with serve_in_thread(build_service(folder, config, search), config) as url:
        page.goto(url + "/")
        page.keyboard.type("how much does it cost")
        for _ in range(4):  # -> answers, threshold, ranking, filter
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "where"
        page.keyboard.type("category = billing")
        page.keyboard.press("Enter")
        page.locator("#status", has_text="answers").wait_for()
        shown = page.locator("#results li.hit")
        assert sorted(shown.nth(i).get_attribute("data-id") for i in range(shown.count())) == [
            "plus",
            "team",
        ]
        page.keyboard.press("Control+A")
        page.keyboard.type("product = app")
        page.keyboard.press("Enter")
        page.locator("#status.error").wait_for()
        assert page.locator("#status").inner_text() == (
            "unknown filter field 'product': the filterable fields are category, lang, price"
        )
        assert page.locator("#results li").count() == 0
