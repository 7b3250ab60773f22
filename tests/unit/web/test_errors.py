"""Gateway errors become readable pages with an HTTP status that says whose fault it was."""

from __future__ import annotations

import grpc
import pytest
from recsys_core.testing import free_port


@pytest.mark.parametrize(
    ("code", "status", "needle"),
    [
        (grpc.StatusCode.UNAVAILABLE, 502, "The recommender is unavailable"),
        (grpc.StatusCode.INVALID_ARGUMENT, 400, "n: must be 1..100"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "took too long"),
        (grpc.StatusCode.UNAUTHENTICATED, 502, "RECSYS_WEB_GATEWAY_API_KEY"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 503, "busy or not ready"),
        (grpc.StatusCode.INTERNAL, 502, "Something went wrong behind the scenes"),
    ],
)
async def test_quiz_gateway_error_is_a_readable_page(web, code, status, needle):
    web.fake.failures["SampleMovies"] = (code, "n: must be 1..100")
    resp = await web.client.get("/")
    html = await resp.text()
    assert resp.status == status
    assert resp.content_type == "text/html"
    assert 'role="alert"' in html and needle in html
    assert f"SampleMovies: {code.name}" in html  # the details, for whoever reports it
    assert 'action="/search"' in html  # still a full page: header with search, a way back
    assert 'href="/"' in html


async def test_invalid_argument_on_recommend_and_search_is_400(web):
    web.fake.failures["Recommend"] = (grpc.StatusCode.INVALID_ARGUMENT, "liked: at most 1000 movies")
    status, html = await web.get("/recommendations?liked=1")
    assert status == 400 and "liked: at most 1000 movies" in html
    web.fake.failures["SearchMovies"] = (grpc.StatusCode.INVALID_ARGUMENT, "query: 1..200 characters")
    status, html = await web.get("/search?q=x")
    assert status == 400 and "query: 1..200 characters" in html


async def test_unavailable_on_each_page_is_502(web):
    await web.client.post("/signin", data={"user_id": "5"})
    for method, path in [
        ("Recommend", "/recommendations?liked=1"),
        ("GetMovies", "/movies/3"),
        ("SearchMovies", "/search?q=star"),
    ]:
        web.fake.failures = {method: (grpc.StatusCode.UNAVAILABLE, "catalog unavailable: connection refused")}
        status, html = await web.get(path)
        assert status == 502, path
        assert "We could not reach the recommendation service" in html
    web.fake.failures = {"RecordFeedback": (grpc.StatusCode.UNAVAILABLE, "catalog unavailable")}
    resp = await web.client.post("/movies/3/rate", data={"rating": "4"})
    assert resp.status == 502 and "unavailable" in await resp.text()


async def test_similar_movies_failure_keeps_the_movie_page(web):
    web.fake.failures["SimilarMovies"] = (grpc.StatusCode.UNAVAILABLE, "retriever unavailable")
    status, html = await web.get("/movies/3")
    assert status == 200
    assert web.fake.by_id[3].title in html
    assert "The recommender is unavailable" in html


async def test_gateway_down_is_502_and_not_ready(make_web):
    web = await make_web(gateway_target=f"127.0.0.1:{free_port()}", gateway_timeout_s=2.0)
    status, html = await web.get("/")
    assert status == 502
    assert "The recommender is unavailable" in html
    resp = await web.client.get("/readyz")
    assert resp.status == 503
    resp = await web.client.get("/healthz")
    assert resp.status == 200


async def test_unknown_page_and_method(web):
    status, html = await web.get("/no/such/page")
    assert status == 404 and "There is no such page." in html
    resp = await web.client.post("/search")
    assert resp.status == 405 and 'role="alert"' in await resp.text()
