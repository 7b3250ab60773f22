"""Every page renders against the fake gateway, and sends the gateway what the page promises."""

from __future__ import annotations

import re

import grpc
from recsys_web.app import USER_COOKIE

ARTICLE_IDS = re.compile(r'<li class="card" data-movie-id="(\d+)"(?: data-score="([-\d.]+)")?')


def card_ids(html: str) -> list[int]:
    return [int(m.group(1)) for m in ARTICLE_IDS.finditer(html)]


def card_scores(html: str) -> list[float]:
    return [float(m.group(2)) for m in ARTICLE_IDS.finditer(html) if m.group(2)]


async def test_quiz_shows_16_well_known_movies_with_a_no_js_form(web):
    status, html = await web.get("/?seed=7")
    assert status == 200
    (req,) = web.fake.requests("SampleMovies")
    assert (req.n, req.seed) == (16, 7)
    assert not req.HasField("min_ratings")  # the gateway's "well-known" default applies
    ids = [int(x) for x in re.findall(r'class="quiz-card" id="card-(\d+)"', html)]
    assert len(ids) == 16 and len(set(ids)) == 16
    assert all(web.fake.by_id[i].rating_count >= 50 for i in ids)
    # Without JS: a radio group per card (skip checked) and a submit button to /recommendations.
    assert html.count('value="like"') == 16 and html.count('value="skip" checked') == 16
    assert 'action="/recommendations" method="get"' in html
    assert 'src="/static/quiz.js"' in html
    # Same seed, same movies.
    _, again = await web.get("/?seed=7")
    assert re.findall(r'id="card-(\d+)"', again) == [str(i) for i in ids]


async def test_quiz_placeholder_poster_without_poster_url_and_img_with_one(web):
    web.fake.by_id[1].poster_url = "https://img.example/p1.jpg"
    status, html = await web.get("/movies/1")
    assert status == 200
    assert '<img class="poster big" src="https://img.example/p1.jpg"' in html
    _, html2 = await web.get("/movies/2")
    assert '<svg class="poster placeholder big"' in html2
    title = web.fake.by_id[2].title
    assert f'aria-label="{title} (no poster)"' in html2


async def test_quiz_answers_send_likes_and_dislikes_to_recommend(web):
    resp = await web.client.get(
        "/recommendations?m1=like&m2=dislike&m4=like&m5=skip&m7=dislike", allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/recommendations?liked=1,4&disliked=2,7"
    status, html = await web.get(resp.headers["Location"])
    assert status == 200
    (req,) = web.fake.requests("Recommend")
    assert [r.movie_id for r in req.liked] == [1, 4]
    assert list(req.disliked_movie_ids) == [2, 7]
    assert req.k == 10 and req.exclude_seen is True
    assert not req.HasField("filter")
    ids = card_ids(html)
    assert len(ids) == 10
    assert not set(ids) & {1, 2, 4, 7}
    scores = card_scores(html)
    assert scores == sorted(scores, reverse=True)
    assert "because you liked" in html
    assert web.fake.by_id[1].title in html  # "You liked ..." summary
    assert 'id="start-over"' in html


async def test_recommendations_filters_requery_with_genre_and_years(web):
    status, html = await web.get(
        "/recommendations?liked=1,4&disliked=2&genre=Drama&year_min=1960&year_max=1990"
    )
    assert status == 200
    req = web.fake.requests("Recommend")[-1]
    assert list(req.filter.genres_any) == ["Drama"]
    assert (req.filter.year_min, req.filter.year_max) == (1960, 1990)
    for mid in card_ids(html):
        movie = web.fake.by_id[mid]
        assert "Drama" in movie.genres and 1960 <= movie.year <= 1990
    # The filter form keeps the profile and offers the catalog's genres.
    assert '<input type="hidden" name="liked" value="1,4">' in html
    assert '<option value="Drama" selected>' in html
    assert "Clear filters" in html


def genre_options(html: str) -> list[str]:
    menu = re.search(r'<select[^>]*id="filter-genre".*?</select>', html, re.S)
    assert menu is not None
    return [v for v in re.findall(r'<option value="([^"]*)"', menu.group(0)) if v]


async def test_genre_menu_is_the_gateway_genre_list(web):
    # A genre no movie on the page has (and no sample would find): the menu still offers it.
    web.fake.genres = ["Animation", "Comedy", "Drama", "Film-Noir", "Sci-Fi"]
    status, html = await web.get("/recommendations?liked=1")
    assert status == 200
    assert genre_options(html) == sorted(
        set(web.fake.genres) | set(web.fake.by_id[1].genres)
    )  # the list, and the profile's genres (always part of the vocabulary)
    assert "Film-Noir" in genre_options(html)
    assert len(web.fake.requests("ListGenres")) == 1
    assert web.fake.requests("SampleMovies") == []  # no sampling to learn genre names
    await web.get("/recommendations?liked=1,4")
    assert len(web.fake.requests("ListGenres")) == 1  # cached by the app


async def test_genre_list_failure_keeps_the_page_with_the_profile_genres(web):
    web.fake.failures["ListGenres"] = (grpc.StatusCode.UNAVAILABLE, "catalog: unavailable: down")
    status, html = await web.get("/recommendations?liked=1&genre=Drama")
    assert status == 200
    assert genre_options(html) == sorted({*web.fake.by_id[1].genres, "Drama"})
    assert card_ids(html)


async def test_recommendations_need_a_signal_and_valid_input(web):
    for path, needle in [
        ("/recommendations", "Like or dislike at least one movie"),
        ("/recommendations?m1=skip", "Like or dislike at least one movie"),
        ("/recommendations?liked=1&disliked=1", "both liked and disliked"),
        ("/recommendations?liked=abc", "is not a movie id"),
        ("/recommendations?liked=1&year_min=3000", "a year between"),
        ("/recommendations?liked=1&year_min=2000&year_max=1990", "must not be after"),
    ]:
        resp = await web.client.get(path)
        html = await resp.text()
        assert resp.status == 400, path
        assert needle in html, path
        assert 'role="alert"' in html
    assert web.fake.requests("Recommend") == []


async def test_movie_page_shows_metadata_and_similar_movies(web):
    status, html = await web.get("/movies/10")
    assert status == 200
    movie = web.fake.by_id[10]
    assert f"<h1>{movie.title}" in html
    assert str(movie.year) in html
    assert all(g in html for g in movie.genres)
    assert f"https://www.imdb.com/title/{movie.imdb_id}/" in html
    (req,) = web.fake.requests("SimilarMovies")
    assert (req.movie_id, req.k) == (10, 8)
    similar = re.search(r'id="similar-movies">(.*?)</ol>', html, re.S)
    assert similar is not None
    ids = card_ids(similar.group(1))
    assert len(ids) == 8 and 10 not in ids
    assert "Sign in with a demo user id" in html  # no rating form when signed out
    assert 'action="/movies/10/rate"' not in html


async def test_unknown_movie_is_a_readable_404(web):
    status, html = await web.get("/movies/9999")
    assert status == 404
    assert "There is no movie with id 9999." in html
    status, html = await web.get("/movies/abc")
    assert status == 404 and "Not found" in html


async def test_sign_in_rate_and_see_recommendations_change(web):
    # Sign in: a plain user id, remembered in a signed, HttpOnly cookie.
    resp = await web.client.post(
        "/signin", data={"user_id": "42", "next": "/movies/5"}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/movies/5"
    cookie = resp.cookies[USER_COOKIE]
    assert cookie.value.startswith("42.") and cookie["httponly"] and cookie["samesite"] == "Lax"

    status, html = await web.get("/movies/5")
    assert status == 200
    assert 'action="/movies/5/rate"' in html
    assert "Rate a few movies to get recommendations." in html  # NOT_FOUND for a user without ratings

    resp = await web.client.post("/movies/5/rate", data={"rating": "5"}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/movies/5?rated=5#for-you"
    (fb,) = web.fake.requests("RecordFeedback")
    assert [(r.user_id, r.movie_id, r.rating) for r in fb.ratings] == [(42, 5, 5.0)]

    status, html = await web.get("/movies/5?rated=5")
    assert "Saved: you rated it 5 ★ as user 42." in html
    mine = re.search(r'id="user-recommendations">(.*?)</ol>', html, re.S)
    assert mine is not None
    first = card_ids(mine.group(1))
    assert first and 5 not in first
    assert web.fake.requests("Recommend")[-1].user_id == 42

    # A second, different rating changes the user's recommendations.
    await web.client.post("/movies/9/rate", data={"rating": "4"}, allow_redirects=False)
    _, me = await web.get("/me")
    after = card_ids(me)
    assert after and 9 not in after and 5 not in after
    assert after != first


async def test_rating_needs_sign_in_and_a_valid_value(web):
    resp = await web.client.post("/movies/5/rate", data={"rating": "4"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/signin?next=/movies/5"
    await web.client.post("/signin", data={"user_id": "3"})
    for bad in ["0", "6", "4.2", "x", ""]:
        resp = await web.client.post("/movies/5/rate", data={"rating": bad}, allow_redirects=False)
        assert resp.status == 400, bad
        assert "Pick a rating" in await resp.text()
    assert web.fake.requests("RecordFeedback") == []


async def test_tampered_or_bad_user_cookie_is_ignored(web):
    web.client.cookie_jar.update_cookies({USER_COOKIE: "42.0000"})
    _, html = await web.get("/movies/5")
    assert "Sign in with a demo user id" in html
    resp = await web.client.post("/signin", data={"user_id": "-3"})
    assert resp.status == 400
    assert "greater than 0" in await resp.text()


async def test_sign_in_never_redirects_off_site_and_sign_out_clears(web):
    resp = await web.client.post(
        "/signin", data={"user_id": "8", "next": "//evil.example/x"}, allow_redirects=False
    )
    assert resp.headers["Location"] == "/"
    _, html = await web.get("/")
    assert "For user 8" in html
    resp = await web.client.post("/signout", allow_redirects=False)
    assert resp.status == 303
    _, html = await web.get("/")
    assert "For user 8" not in html and "Sign in" in html


async def test_me_redirects_when_signed_out(web):
    resp = await web.client.get("/me", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/signin?next=/me"
    await web.client.post("/signin", data={"user_id": "77"})
    status, html = await web.get("/me")
    assert status == 200 and "has no ratings yet" in html


async def test_movies_added_since_training_show_new(web):
    """A movie the catalog added after the model was trained (Movie.added_since_training) has a
    "new" badge on its page, in search results and on cards; the others have none."""
    added = web.fake.by_id[12]
    added.added_since_training = True
    badge = re.compile(r'<span class="badge-new"[^>]*>new</span>')
    _, page = await web.get("/movies/12")
    assert badge.search(page)
    _, other = await web.get("/movies/13")
    assert not badge.search(other)
    _, html = await web.get("/search", params={"q": added.title.split()[1]})
    cards = re.findall(r'<li class="card" data-movie-id="(\d+)".*?</li>', html, re.S)
    assert "12" in cards
    for card in re.finditer(r'<li class="card" data-movie-id="(\d+)"(.*?)</li>', html, re.S):
        assert bool(badge.search(card.group(2))) == (card.group(1) == "12"), card.group(1)


async def test_search_box_on_every_page_and_results(web):
    for path in ["/", "/recommendations?liked=1", "/movies/3", "/search", "/signin", "/nope"]:
        _, html = await web.get(path)
        assert 'action="/search"' in html and 'name="q"' in html, path
    status, html = await web.get("/search?q=storm")
    assert status == 200
    (req,) = web.fake.requests("SearchMovies")
    assert (req.query, req.limit) == ("storm", 20)
    ids = card_ids(html)
    assert ids and all("storm" in web.fake.by_id[i].title.lower() for i in ids)
    assert 'value="storm"' in html  # the box keeps the query
    status, html = await web.get("/search?q=zzzz")
    assert status == 200 and 'id="no-results"' in html


async def test_output_is_escaped(web):
    status, html = await web.get("/search?q=<script>alert(1)</script>")
    assert status == 200
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_health_readiness_metrics_and_headers(web):
    resp = await web.client.get("/healthz")
    assert resp.status == 200 and (await resp.json()) == {"status": "ok"}
    resp = await web.client.get("/readyz")
    assert resp.status == 200 and (await resp.json()) == {"status": "ready"}
    await web.get("/?seed=1")
    resp = await web.client.get("/metrics")
    text = await resp.text()
    assert 'recsys_web_requests_total{method="GET",route="/",status="200"} 1.0' in text
    resp = await web.client.get("/", headers={"X-Request-ID": "abc123"})
    assert resp.headers["X-Request-ID"] == "abc123"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert web.fake.metadata[-1].get("x-request-id") == "abc123"  # forwarded to the gateway


async def test_static_files_are_served(web):
    for path, kind in [("/static/style.css", "text/css"), ("/static/quiz.js", "javascript")]:
        resp = await web.client.get(path)
        assert resp.status == 200 and kind in resp.headers["Content-Type"]


async def test_api_key_is_sent_when_configured(make_web):
    web = await make_web(gateway_api_key="k-123")
    await web.get("/?seed=3")
    assert web.fake.metadata[-1]["x-api-key"] == "k-123"
