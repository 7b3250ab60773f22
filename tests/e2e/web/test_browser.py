"""The web app in headless Chromium: finish the quiz, get 10 recommendations that exclude the liked
and disliked movies, filter them, open a movie, sign in, rate it, search; at desktop and phone widths.

Runs against the fake gateway (always, when a browser is installed) and against the real stack on a
generated data set (the session's ``stack`` fixture from tests/e2e/conftest.py). Screenshots of
every page go to test-artifacts/web/.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
import pytest
from recsys_web.testing import BackgroundWeb, FakeGateway

pytestmark = pytest.mark.slow

DESKTOP = (1280, 900)
PHONE = (390, 844)
# How the quiz is answered, card by card, cycling: every input path gets used.
ANSWERS = ("L", "click:dislike", "S", "ArrowRight", "D", "click:like", "ArrowDown", "ArrowLeft")


@dataclass
class FlowResult:
    liked: list[int] = field(default_factory=list)
    disliked: list[int] = field(default_factory=list)
    recommended: list[int] = field(default_factory=list)
    recommendations_url: str = ""
    movie_url: str = ""
    search_url: str = ""


def _answer(browser, how: str) -> str:
    from selenium.webdriver.common.keys import Keys

    if how.startswith("click:"):
        value = how.split(":", 1)[1]
        browser.css(f'.quiz-buttons button[data-answer="{value}"]').click()
        return value
    key = {"ArrowRight": Keys.ARROW_RIGHT, "ArrowLeft": Keys.ARROW_LEFT, "ArrowDown": Keys.ARROW_DOWN}.get(
        how, how
    )
    browser.keys(key)
    return {"L": "like", "D": "dislike", "S": "skip", "ArrowRight": "like", "ArrowLeft": "dislike"}.get(
        how, "skip"
    )


def quiz_flow(browser, base: str, prefix: str) -> FlowResult:
    """Finish the quiz at desktop width; return what was liked/disliked and the recommendations."""
    result = FlowResult()
    browser.size(*DESKTOP)
    browser.open(base + "/")
    browser.visible(".quiz-card.current")
    ids = [int(c.get_attribute("data-movie-id")) for c in browser.all(".quiz-card")]
    total = len(ids)
    assert total >= 2, "the quiz needs movies to show"
    assert browser.css("#quiz-count").text == f"Movie 1 of {total}"
    assert not browser.css("#quiz-submit").is_enabled()  # nothing answered yet
    browser.screenshot(f"{prefix}-quiz-desktop")
    for i in range(total):
        current = browser.visible(".quiz-card.current")
        assert int(current.get_attribute("data-movie-id")) == ids[i]
        assert len([c for c in browser.all(".quiz-card") if c.is_displayed()]) == 1  # one card at a time
        answer = _answer(browser, ANSWERS[i % len(ANSWERS)])
        {"like": result.liked, "dislike": result.disliked}.get(answer, []).append(ids[i])
        if i == 0:
            # Back (B) returns to the first card; answering again replaces the answer.
            browser.keys("b")
            assert int(browser.visible(".quiz-card.current").get_attribute("data-movie-id")) == ids[0]
            browser.keys("L")
        if i == total // 2:
            assert browser.css("#quiz-progress").get_attribute("value") == str(i + 1)
    assert browser.css("#quiz-count").text == f"All {total} movies done"
    summary = browser.css("#quiz-summary").text
    assert summary.startswith(f"{len(result.liked)} liked · {len(result.disliked)} disliked"), summary
    browser.screenshot(f"{prefix}-quiz-done-desktop")
    browser.css("#quiz-submit").click()
    browser.wait_url("/recommendations?")
    browser.css("#recommendations")
    result.recommendations_url = browser.driver.current_url
    cards = browser.all("#recommendations .card")
    result.recommended = [int(c.get_attribute("data-movie-id")) for c in cards]
    scores = [float(c.get_attribute("data-score")) for c in cards]
    assert scores == sorted(scores, reverse=True)
    assert "because you liked" in browser.css("#recommendations").text
    browser.screenshot(f"{prefix}-recommendations-desktop")
    return result


def filter_flow(browser, prefix: str) -> None:
    """Pick the first card's first genre in the filter; every card shown then has it."""
    from selenium.webdriver.support.ui import Select

    genre = browser.all("#recommendations .card .genre")[0].text
    Select(browser.css("#filter-genre")).select_by_value(genre)
    browser.css("#filter-year-min").send_keys("1900")
    browser.css("form.filters button[type=submit]").click()
    browser.wait_url("genre=")
    for card in browser.all("#recommendations .card"):
        assert genre in [g.text for g in card.find_elements("css selector", ".genre")]
    assert "Clear filters" in browser.css("form.filters").text
    browser.screenshot(f"{prefix}-recommendations-filtered-desktop")


def movie_flow(browser, prefix: str, user_id: int, result: FlowResult) -> str:
    """Open the first recommendation, sign in, rate it 4 stars; return its title."""
    first = browser.all("#recommendations .card a")[0]
    movie_id = first.find_element("xpath", "..").get_attribute("data-movie-id")
    first.click()
    browser.wait_url(f"/movies/{movie_id}")
    result.movie_url = browser.driver.current_url
    title = browser.css("article.movie h1").text
    assert browser.css("#similar h2").text == "Similar movies"
    browser.css("nav.user a").click()  # "Sign in"
    browser.wait_url("/signin")
    browser.screenshot(f"{prefix}-signin-desktop")
    browser.css("#user-id").send_keys(str(user_id))
    browser.css("form.signin button").click()
    browser.wait_url(f"/movies/{movie_id}")
    browser.wait_text("nav.user", f"For user {user_id}")
    browser.css('form.stars button[value="4"]').click()
    browser.wait_url("rated=4")
    assert f"you rated it 4 ★ as user {user_id}" in browser.visible("#rated-flash").text
    mine = [int(c.get_attribute("data-movie-id")) for c in browser.all("#user-recommendations .card")]
    assert mine and int(movie_id) not in mine  # Recommend(user_id) now knows the rating
    browser.screenshot(f"{prefix}-movie-desktop")
    return title


def search_flow(browser, prefix: str, title: str, result: FlowResult) -> None:
    # The whole title: generated titles share words, so one word can match more movies than a page holds.
    box = browser.css("#search-q")
    box.clear()
    box.send_keys(title.split(" (")[0] + "\n")
    browser.wait_url("/search?q=")
    result.search_url = browser.driver.current_url
    found = [c.text for c in browser.all("#search-results .card")]
    assert any(title.split(" (")[0] in text for text in found), (title, found)
    browser.screenshot(f"{prefix}-search-desktop")


def phone_pass(browser, base: str, prefix: str, result: FlowResult) -> None:
    """The same pages at phone width: no sideways scrolling, the key controls visible."""
    browser.size(*PHONE)
    for name, url, needle in [
        ("quiz", base + "/", ".quiz-buttons"),
        ("recommendations", result.recommendations_url, "#recommendations"),
        ("movie", result.movie_url, "form.stars"),
        ("search", result.search_url, "#search-results"),
    ]:
        browser.open(url)
        browser.visible(needle)
        browser.visible("#search-q")
        assert browser.no_horizontal_scroll(), f"{name} scrolls sideways at phone width"
        browser.screenshot(f"{prefix}-{name}-phone")
    browser.size(*DESKTOP)


def test_quiz_to_rating_in_chromium_fake_gateway(browser):
    fake = FakeGateway()
    with BackgroundWeb(fake=fake) as bg:
        result = quiz_flow(browser, bg.url, "fake")
        assert result.liked and result.disliked
        (req,) = bg.call(lambda: fake.requests("Recommend"))
        assert sorted(r.movie_id for r in req.liked) == sorted(result.liked)
        assert sorted(req.disliked_movie_ids) == sorted(result.disliked)
        assert len(result.recommended) == 10
        assert not set(result.recommended) & set(result.liked + result.disliked)
        filter_flow(browser, "fake")
        browser.open(result.recommendations_url)
        title = movie_flow(browser, "fake", 4242, result)
        feedback = bg.call(lambda: fake.requests("RecordFeedback"))
        assert [(r.user_id, r.rating) for f in feedback for r in f.ratings] == [(4242, 4.0)]
        search_flow(browser, "fake", title, result)
        phone_pass(browser, bg.url, "fake", result)
        # A backend failure is a readable page, not a blank one.
        bg.call(
            lambda: fake.failures.update(
                {"SampleMovies": (grpc.StatusCode.UNAVAILABLE, "catalog unavailable")}
            )
        )
        browser.open(bg.url + "/")
        assert browser.visible("section.error h1").text == "The recommender is unavailable"
        browser.screenshot("fake-error-desktop")
        browser.size(*PHONE)
        browser.open(bg.url + "/")
        assert browser.no_horizontal_scroll()
        browser.screenshot("fake-error-phone")
        browser.size(*DESKTOP)


def test_quiz_works_as_a_form_without_javascript(browser):
    fake = FakeGateway()
    with BackgroundWeb(fake=fake) as bg:
        browser.size(*DESKTOP)
        browser.driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        try:
            browser.open(bg.url + "/?seed=5")
            cards = browser.all(".quiz-card")
            assert len(cards) == 16 and all(c.is_displayed() for c in cards)  # every card, as a form
            assert not browser.css(".quiz-buttons").is_displayed()
            ids = [int(c.get_attribute("data-movie-id")) for c in cards]
            browser.css(f'input[name="m{ids[0]}"][value="like"]').click()
            browser.css(f'input[name="m{ids[1]}"][value="dislike"]').click()
            browser.screenshot("fake-quiz-nojs-desktop")
            browser.css("#quiz-submit").click()
            browser.wait_url(f"/recommendations?liked={ids[0]}&disliked={ids[1]}")
            recommended = [
                int(c.get_attribute("data-movie-id")) for c in browser.all("#recommendations .card")
            ]
            assert len(recommended) == 10 and not set(recommended) & {ids[0], ids[1]}
        finally:
            browser.driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def test_quiz_to_rating_in_chromium_real_stack(browser, request):
    try:
        stack = request.getfixturevalue("stack")
    except pytest.FixtureLookupError:
        pytest.skip("stack fixture not available")
    browser.driver.delete_all_cookies()
    with BackgroundWeb(gateway_target=stack.gateway_target, gateway_timeout_s=10.0) as bg:
        result = quiz_flow(browser, bg.url, "stack")
        assert result.liked and result.disliked
        assert len(result.recommended) == 10
        assert not set(result.recommended) & set(result.liked + result.disliked)
        filter_flow(browser, "stack")
        browser.open(result.recommendations_url)
        title = movie_flow(browser, "stack", 900001, result)
        search_flow(browser, "stack", title, result)
        phone_pass(browser, bg.url, "stack", result)
