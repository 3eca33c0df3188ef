"""postgrest-py (`postgrest` on PyPI) `.rpc()` against the real pgrpc binary, unchanged.

Run by tests/it/clients.rs, which starts the binary, creates the functions used
here in its `api` schema and sets PGRPC_URL (and PGRPC_TOKEN, a token for
app_user made by `pgrpc token`). By hand:
`PGRPC_URL=http://127.0.0.1:3000 target/pyenv-clients/bin/python -m pytest tests/clients/py`.

Tests marked xfail(strict=True) pin what PostgREST does and pgrpc does not yet;
once the gateway does it they fail as XPASS, so the mark cannot go stale.
"""

import os

import pytest
from postgrest import APIError, CountMethod, SyncPostgrestClient

URL = os.environ.get("PGRPC_URL")
TOKEN = os.environ.get("PGRPC_TOKEN")

if not URL:
    pytest.exit("set PGRPC_URL to the gateway, e.g. http://127.0.0.1:3000", returncode=2)


@pytest.fixture
def client():
    # The library's default schema is "public" (Supabase's); pgrpc, like a
    # PostgREST configured with db-schemas = api, exposes `api`.
    with SyncPostgrestClient(URL, schema="api") as c:
        yield c


def test_post_add_is_5(client):
    res = client.rpc("add", {"a": 2, "b": 3}).execute()
    assert res.data == 5


def test_post_default_argument_left_out(client):
    assert client.rpc("add", {"a": 41}).execute().data == 42


def test_get_stable_function(client):
    res = client.rpc("hello", {"name": "world"}, get=True).execute()
    assert res.data == "Hello, world"


def test_get_add_is_5(client):
    assert client.rpc("add", {"a": 2, "b": 3}, get=True).execute().data == 5


def test_get_array_argument(client):
    # Sent as the PostgreSQL array literal {1,2,3}.
    assert client.rpc("arr_len", {"xs": [1, 2, 3]}, get=True).execute().data == 3


def test_head_works_without_error(client):
    res = client.rpc("points", {"n": 3}, head=True).execute()
    # No body: the library turns the empty answer into [].
    assert res.data == []


def test_void_function(client):
    res = client.rpc("nothing", {}).execute()
    assert res.data == []


def test_set_returning_rows(client):
    res = client.rpc("points", {"n": 3}).execute()
    assert res.data == [{"x": 1, "y": 1}, {"x": 2, "y": 4}, {"x": 3, "y": 9}]


def test_set_returning_scalars_over_get(client):
    assert client.rpc("numbers", {"n": 4}, get=True).execute().data == [1, 2, 3, 4]


def test_single_row(client):
    res = client.rpc("points", {"n": 1}).single().execute()
    assert res.data == {"x": 1, "y": 1}


def test_no_count_asked_means_none(client):
    assert client.rpc("points", {"n": 3}).execute().count is None


def test_count_exact(client):
    res = client.rpc("points", {"n": 3}, count=CountMethod.exact).execute()
    assert res.count == 3


def test_count_exact_with_head(client):
    res = client.rpc("points", {"n": 3}, count=CountMethod.exact, head=True).execute()
    assert res.count == 3


def test_post_select_and_limit(client):
    res = client.rpc("points", {"n": 3}).select("x").limit(2).execute()
    assert res.data == [{"x": 1}, {"x": 2}]


def test_get_limit(client):
    res = client.rpc("numbers", {"n": 5}, get=True).limit(2).execute()
    assert res.data == [1, 2]


def test_raise_is_api_error_with_code_message_details_hint(client):
    with pytest.raises(APIError) as info:
        client.rpc("raise_plain", {}).execute()
    e = info.value
    assert (e.code, e.message, e.details, e.hint) == (
        "P0001",
        "plain failure",
        "some detail",
        "some hint",
    )


def test_unknown_function_is_pgrst202(client):
    with pytest.raises(APIError) as info:
        client.rpc("no_such_function", {"a": 1}).execute()
    assert info.value.code == "PGRST202"


def test_default_schema_public_is_pgrst106():
    # What a user who forgets schema="api" sees; PostgREST answers the same.
    with SyncPostgrestClient(URL) as c:
        with pytest.raises(APIError) as info:
            c.rpc("add", {"a": 1}).execute()
    assert info.value.code == "PGRST106"
    assert "api" in info.value.hint


def test_anonymous_role(client):
    assert client.rpc("whoami", {}).execute().data == "web_anon"


@pytest.mark.skipif(not TOKEN, reason="PGRPC_TOKEN not set")
def test_bearer_token_runs_as_its_role(client):
    assert client.auth(TOKEN).rpc("whoami", {}).execute().data == "app_user"
    assert client.rpc("whoami", {}, get=True).execute().data == "app_user"
