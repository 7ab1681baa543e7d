from __future__ import annotations

import httpx


def test_full_code_flow_gives_tokens(flow, user) -> None:
    params = flow.get_code(user)
    assert params["state"] == flow.state
    assert params["iss"] == flow.platform.url
    response = flow.token(params["code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    assert {"access_token", "id_token", "refresh_token", "expires_in"} <= set(body)
    info = httpx.get(f"{flow.platform.url}/userinfo",
                     headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json()["email"] == user["email"]
