def test_index(client):
    r = client.call("GET", "/")
    assert r.status_code == 200 and r.data["service"] == "kilele"


def test_login_and_me(superadmin):
    r = superadmin.call("GET", "/users/me")
    assert r.status_code == 200, r.data
    assert r.data["user_type"] == "SUPERADMIN"
