"""Datasets: direct upload, presigned upload + completion, download from a URL, listing and
visibility. A bad file answers 4xx and leaves no dataset and no object behind."""
from __future__ import annotations

import http.server
import io
import socket
import threading
import time
import zipfile
from typing import Any, Iterator

import pytest
import requests
from api_support import REGRESSION_CSV, TABULAR_CSV, assert_error, b64, image_zip

BAD_CSV = b"x1,x2,target\n1,2,a\n3,oops,b\n"


def dataset_body(content: bytes = TABULAR_CSV, **fields: Any) -> dict[str, Any]:
    return {"name": "iris", "task": "TABULAR_CLASSIFICATION", "content_base64": b64(content), **fields}


def create(api, **fields: Any) -> dict[str, Any]:
    r = api.call("POST", "/datasets", dataset_body(**fields))
    assert r.status_code == 201, r.data
    return r.data


def names(api, query: str = "") -> list[str]:
    r = api.call("GET", f"/datasets{query}")
    assert r.status_code == 200, r.data
    return [d["name"] for d in r.data]


@pytest.fixture
def dev(make_user):
    return make_user("MODEL_DEVELOPER")


@pytest.fixture
def app_dev(make_user):
    return make_user("APP_DEVELOPER")


@pytest.fixture
def nothing_stored(superadmin, bucket):
    """Call it after a refused request: no dataset (of any status) is listed and the bucket is empty."""
    def check() -> None:
        assert superadmin.call("GET", "/datasets").data == []
        assert bucket.keys() == []
    return check


# --- direct upload ----------------------------------------------------------------------------

def test_direct_tabular_upload_is_ready_with_stats(dev, bucket):
    data = create(dev, target_column="target")
    assert data["status"] == "READY" and data["task"] == "TABULAR_CLASSIFICATION"
    assert data["size_bytes"] == len(TABULAR_CSV) and data["target_column"] == "target"
    assert data["stats"] == {"rows": 3, "features": ["x1", "x2"], "target_column": "target", "classes": 2}
    assert data["owner_id"] == dev.call("GET", "/users/me").data["id"]
    assert dev.call("GET", f"/datasets/{data['id']}").data == data
    assert bucket.keys() == [f"datasets/{data['id']}/data"]
    assert bucket.read(f"datasets/{data['id']}/data") == TABULAR_CSV


def test_direct_regression_upload(dev):
    data = create(dev, task="TABULAR_REGRESSION", content=REGRESSION_CSV)
    assert data["stats"] == {"rows": 2, "features": ["x1", "x2"], "target_column": "y"}


def test_direct_image_zip_upload(dev):
    data = create(dev, task="IMAGE_CLASSIFICATION", content=image_zip((0, 1, 2, 1)))
    assert data["status"] == "READY"
    assert data["stats"] == {"images": 4, "classes": 3, "image_size": [8, 8]}


def test_zip_bomb_is_refused_quickly_naming_the_limit(dev, nothing_stored):
    """Issue 9, finding 3: 3 million index rows naming one image, ~100 KB zipped (more bombs in
    tests/security/test_archives.py)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("images.csv", "path,class\n" + "images/0.png,0\n" * 3_000_000)
        archive.writestr("images/0.png", b"not even read")
    started = time.monotonic()
    r = dev.call("POST", "/datasets", dataset_body(buffer.getvalue(), task="IMAGE_CLASSIFICATION"))
    assert time.monotonic() - started < 1.0
    assert_error(r, 413, "payload_too_large", "'images.csv' expands", "(archive_max_ratio)")
    nothing_stored()


@pytest.mark.parametrize("fields, phrases", [
    ({"content": BAD_CSV}, ["line 3, column 'x2'", "'oops' is not a number"]),
    ({"content": TABULAR_CSV, "target_column": "label"}, ["target column 'label' is not in the CSV header"]),
    ({"content": b"x,y\n1,a\n", "task": "TABULAR_REGRESSION"}, ["must be a number"]),
    ({"content": TABULAR_CSV, "task": "IMAGE_CLASSIFICATION"}, ["not a zip archive"]),
    ({"content": image_zip(), "task": "IMAGE_CLASSIFICATION", "target_column": "class"}, ["tabular datasets only"]),
], ids=["bad value", "missing target", "bad regression target", "csv as images", "target for images"])
def test_bad_file_is_refused_and_nothing_is_stored(dev, nothing_stored, fields, phrases):
    assert_error(dev.call("POST", "/datasets", dataset_body(**fields)), 422, "unprocessable", *phrases)
    nothing_stored()


def test_too_large_for_the_direct_path(dev, nothing_stored, override_settings):
    override_settings(max_direct_upload_bytes=10)
    r = dev.call("POST", "/datasets", dataset_body())
    assert_error(r, 413, "payload_too_large", f"{len(TABULAR_CSV)} bytes", "over 10 bytes", "/datasets/uploads")
    nothing_stored()


def test_body_over_the_request_limit(dev, nothing_stored):
    from chalicelib.api.http import MAX_BODY_BYTES

    r = dev.call("POST", "/datasets", raw=b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert_error(r, 413, "payload_too_large", f"the limit is {MAX_BODY_BYTES}")
    nothing_stored()


# --- malformed requests: 400 -------------------------------------------------------------------

@pytest.mark.parametrize("body, phrases", [
    ({**dataset_body(), "task": "SPEECH"}, ["task"]),
    ({**dataset_body(), "dataset_url": "http://127.0.0.1:1/x.csv"}, ["exactly one of content_base64 and dataset_url"]),
    ({"name": "iris", "task": "TABULAR_CLASSIFICATION"}, ["exactly one of content_base64 and dataset_url"]),
    ({**dataset_body(), "content_base64": "not base64!"}, ["content_base64", "base64"]),
    ({**dataset_body(), "content_base64": ""}, ["the file is empty"]),
    ({**dataset_body(), "name": 123}, ["name"]),
    ({**dataset_body(), "task": ["TABULAR_CLASSIFICATION"]}, ["task"]),
    ({**dataset_body(), "target_column": 5}, ["target_column"]),
    ({**dataset_body(), "name": ""}, ["name"]),
    ({**dataset_body(), "colour": "red"}, ["colour"]),
    ([dataset_body()], ["body"]),
], ids=["unknown task", "both sources", "neither source", "bad base64", "empty base64", "name type",
        "task type", "target type", "empty name", "unknown field", "array body"])
def test_malformed_body(dev, nothing_stored, body, phrases):
    assert_error(dev.call("POST", "/datasets", body), 400, "invalid_input", *phrases)
    nothing_stored()


def test_an_empty_file_is_named_as_the_user_sent_it(dev, nothing_stored):
    """The SDK user sent a file, not a wire field: the message says the file is empty."""
    response = dev.call("POST", "/datasets", {**dataset_body(), "content_base64": ""})
    assert_error(response, 400, "invalid_input", "the file is empty")
    assert "content_base64" not in response.data["error"]["message"]
    nothing_stored()


@pytest.mark.parametrize("raw, phrase", [
    (b"name=iris&task=TABULAR_CLASSIFICATION", "not valid JSON"),
    (b'{"name": "iris",', "not valid JSON"),
    (b"", "Field required"),  # no body counts as {}: the required fields are named
    (b"\xff\xfe", "not valid JSON"),
])
def test_non_json_body(dev, nothing_stored, raw, phrase):
    assert_error(dev.call("POST", "/datasets", raw=raw), 400, "invalid_input", phrase)
    nothing_stored()


def test_without_credentials(client, nothing_stored):
    assert_error(client.call("POST", "/datasets", dataset_body()), 401, "unauthenticated")
    nothing_stored()


# --- listing and visibility --------------------------------------------------------------------

def test_listing_by_task(dev):
    create(dev, name="tab")
    create(dev, name="reg", task="TABULAR_REGRESSION", content=REGRESSION_CSV)
    assert names(dev) == ["tab", "reg"]  # oldest first
    assert names(dev, "?task=TABULAR_REGRESSION") == ["reg"]
    assert names(dev, "?task=IMAGE_CLASSIFICATION") == []
    assert_error(dev.call("GET", "/datasets?task=SPEECH"), 400, "invalid_input", "task")
    assert_error(dev.call("GET", "/datasets?owner=me"), 400, "invalid_input", "owner")


def test_users_see_their_own_and_admins_see_all(dev, app_dev, make_user):
    create(dev, name="dev-data")
    create(app_dev, name="app-data")
    assert names(dev) == ["dev-data"]
    assert names(app_dev) == ["app-data"]
    assert names(make_user("ADMIN")) == ["dev-data", "app-data"]


def test_other_users_dataset_is_not_found(dev, app_dev, make_user):
    data = create(dev)
    assert_error(app_dev.call("GET", f"/datasets/{data['id']}"), 404, "not_found", data["id"])
    assert make_user("ADMIN").call("GET", f"/datasets/{data['id']}").data == data


def test_unknown_dataset(dev):
    assert_error(dev.call("GET", "/datasets/nope"), 404, "not_found", "'nope'")


# --- presigned upload --------------------------------------------------------------------------

def start_upload(api, size: int, **fields: Any) -> dict[str, Any]:
    body = {"name": "big", "task": "TABULAR_CLASSIFICATION", "size_bytes": size, **fields}
    r = api.call("POST", "/datasets/uploads", body)
    assert r.status_code == 201, r.data
    return r.data


def upload(reservation: dict[str, Any], content: bytes) -> None:
    """What a client does with the presigned POST (moto intercepts ``requests`` in process)."""
    form = reservation["upload"]
    response = requests.post(form["url"], data=form["fields"], files={"file": ("data", content)})
    assert response.status_code in (200, 201, 204), response.text


def complete(api, reservation: dict[str, Any]):
    return api.call("POST", f"/datasets/{reservation['dataset']['id']}/complete")


def test_presigned_upload_then_complete(dev, bucket):
    reservation = start_upload(dev, len(TABULAR_CSV))
    dataset = reservation["dataset"]
    assert dataset["status"] == "UPLOADING"
    assert set(reservation["upload"]) == {"url", "fields"}
    assert reservation["upload"]["fields"]["key"] == f"datasets/{dataset['id']}/data"
    assert names(dev) == []  # not usable yet

    upload(reservation, TABULAR_CSV)
    r = complete(dev, reservation)
    assert r.status_code == 200, r.data
    assert r.data["status"] == "READY" and r.data["size_bytes"] == len(TABULAR_CSV)
    assert r.data["stats"]["rows"] == 3
    assert names(dev) == ["big"]
    assert bucket.read(f"datasets/{dataset['id']}/data") == TABULAR_CSV


def test_presigned_image_zip(dev):
    content = image_zip((3, 4))
    reservation = start_upload(dev, len(content), task="IMAGE_CLASSIFICATION")
    upload(reservation, content)
    r = complete(dev, reservation)
    assert r.status_code == 200 and r.data["stats"] == {"images": 2, "classes": 2, "image_size": [8, 8]}


def test_completing_a_bad_file_removes_object_and_record(dev, nothing_stored):
    reservation = start_upload(dev, len(BAD_CSV))
    upload(reservation, BAD_CSV)
    assert_error(complete(dev, reservation), 422, "unprocessable", "line 3", "'oops' is not a number")
    assert_error(dev.call("GET", f"/datasets/{reservation['dataset']['id']}"), 404, "not_found")
    nothing_stored()


def test_completing_an_upload_over_the_dataset_limit_removes_it(dev, nothing_stored, override_settings):
    reservation = start_upload(dev, 10)
    override_settings(max_dataset_bytes=10)  # the file turned out larger than announced
    upload(reservation, TABULAR_CSV)
    assert_error(complete(dev, reservation), 413, "payload_too_large", "limit is 10")
    nothing_stored()


def test_completing_twice_conflicts(dev):
    reservation = start_upload(dev, len(TABULAR_CSV))
    upload(reservation, TABULAR_CSV)
    assert complete(dev, reservation).status_code == 200
    assert_error(complete(dev, reservation), 409, "conflict", "already READY")


def test_completing_someone_elses_upload_is_not_found(dev, app_dev):
    reservation = start_upload(dev, len(TABULAR_CSV))
    upload(reservation, TABULAR_CSV)
    assert_error(complete(app_dev, reservation), 404, "not_found")
    assert complete(dev, reservation).status_code == 200  # the owner's upload is untouched


def test_completing_before_uploading_keeps_the_reservation(dev):
    reservation = start_upload(dev, len(TABULAR_CSV))
    assert_error(complete(dev, reservation), 404, "not_found", "nothing was uploaded")
    upload(reservation, TABULAR_CSV)
    assert complete(dev, reservation).status_code == 200


def test_reserving_more_than_the_dataset_limit(dev, nothing_stored, override_settings):
    override_settings(max_dataset_bytes=100)
    r = dev.call("POST", "/datasets/uploads", {"name": "big", "task": "TABULAR_CLASSIFICATION", "size_bytes": 101})
    assert_error(r, 413, "payload_too_large", "limited to 100 bytes")
    nothing_stored()


@pytest.mark.parametrize("size", [0, -1, "many"])
def test_reserving_a_bad_size(dev, nothing_stored, size):
    r = dev.call("POST", "/datasets/uploads", {"name": "big", "task": "TABULAR_CLASSIFICATION", "size_bytes": size})
    assert_error(r, 400, "invalid_input", "size_bytes")
    nothing_stored()


# --- dataset_url -------------------------------------------------------------------------------
# The platform fetches the URL itself (moto's in-process mock does not intercept it), so a real
# HTTP server on loopback serves the files. Loopback is not a public address: the tests that
# download from it allow 127.0.0.1 explicitly (``loopback_allowed``); the default refuses it.

class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def file_server() -> Iterator[str]:
    """Base URL of a loopback HTTP server serving /good.csv, /bad.csv and /empty.csv."""
    handler = type("Files", (_Files,), {"files": {"/good.csv": TABULAR_CSV, "/bad.csv": BAD_CSV, "/empty.csv": b""}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


LOOPBACK = {"dataset_url_allowed_networks": ["127.0.0.1/32"]}


@pytest.fixture
def loopback_allowed(override_settings) -> None:
    """The services rebuilt with 127.0.0.1 allowed for dataset_url (a test override only)."""
    override_settings(**LOOPBACK)


def from_url(api, url: str, **fields: Any):
    return api.call("POST", "/datasets", {"name": "web", "task": "TABULAR_CLASSIFICATION", "dataset_url": url, **fields})


def test_dataset_from_url(dev, bucket, file_server, loopback_allowed):
    r = from_url(dev, f"{file_server}/good.csv")
    assert r.status_code == 201, r.data
    assert r.data["status"] == "READY" and r.data["size_bytes"] == len(TABULAR_CSV)
    assert bucket.read(f"datasets/{r.data['id']}/data") == TABULAR_CSV


@pytest.mark.parametrize("path, phrases", [
    ("/bad.csv", ["/bad.csv: line 3, column 2 is not a number"]),  # where, not what: no 'x2', no 'oops'
    ("/missing.csv", ["could not download", "HTTP 404"]),
    ("/empty.csv", ["returned an empty file"]),
])
def test_unusable_url(dev, nothing_stored, file_server, loopback_allowed, path, phrases):
    message = assert_error(from_url(dev, f"{file_server}{path}"), 422, "unprocessable", *phrases)
    assert "oops" not in message and "x2" not in message, "a downloaded file is never quoted"
    nothing_stored()


def test_url_over_the_dataset_limit(dev, nothing_stored, file_server, override_settings):
    override_settings(max_dataset_bytes=10, **LOOPBACK)
    assert_error(from_url(dev, f"{file_server}/good.csv"), 413, "payload_too_large", "limit")
    nothing_stored()


def test_loopback_is_refused_by_default(dev, nothing_stored, file_server):
    """Issue 9, finding 2: the API fetched loopback (moto) and quoted it. By default it refuses."""
    r = from_url(dev, f"{file_server}/bad.csv")
    assert_error(r, 422, "unprocessable", "not a public address")
    assert "oops" not in r.data["error"]["message"]
    nothing_stored()


def test_unreachable_url(dev, nothing_stored, loopback_allowed):
    with socket.socket() as sock:  # a loopback port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    assert_error(from_url(dev, f"http://127.0.0.1:{closed_port}/x.csv"), 422, "unprocessable", "could not download")
    nothing_stored()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.csv", "example.com/x.csv"])
def test_url_must_be_http(dev, nothing_stored, url):
    assert_error(from_url(dev, url), 400, "invalid_input", "must be an http(s) URL")
    nothing_stored()
