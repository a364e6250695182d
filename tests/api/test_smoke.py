def test_index(client):
    r = client.call("GET", "/")
    assert r.status_code == 200 and r.data["service"] == "kilele"


def test_login_and_me(superadmin):
    r = superadmin.call("GET", "/users/me")
    assert r.status_code == 200, r.data
    assert r.data["user_type"] == "SUPERADMIN"


def test_bootstrap_seeds_the_superadmin_once_and_refuses_the_default_password(aws, settings, capsys):
    from chalicelib import bootstrap, wiring

    assert bootstrap.main(settings) == 2 and "default password" in capsys.readouterr().err
    weak = settings.with_values(superadmin_password="password1")
    assert bootstrap.main(weak) == 2 and "common password" in capsys.readouterr().err
    strong = settings.with_values(superadmin_password="a-strong-one")
    assert bootstrap.main(strong) == 0 and bootstrap.main(strong) == 0
    assert wiring.build(strong).auth.login("superadmin@kilele", "a-strong-one")["user"]["user_type"] == "SUPERADMIN"


def test_chalice_own_errors_have_the_api_error_shape(client):
    media = client.call("POST", "/tokens", headers={"Content-Type": "application/xml"}, raw=b"<x/>")
    assert media.status_code == 415
    assert media.data["error"] == {"code": "unsupported_media_type", "message": "Unsupported media type: application/xml"}
    method = client.call("PUT", "/tokens", {})
    assert method.status_code == 405 and method.data["error"]["code"] == "method_not_allowed"
