"""The HTTP floor of bench/serving.py: a JSON echo on kilele-serve's own HTTP stack.

A bare ASGI app (no framework) that answers ``POST`` with its body parsed and re-serialized by
orjson, and ``GET /ping`` with ``{}``, served by uvicorn with exactly the settings kilele-serve runs
with (``kilele_inference``'s ``uvicorn_config``: uvloop, httptools, no access log, one process). So
the bench shows what one Python process on this stack answers at all, with no model, batching or
thread hop behind it. Runs in the project's venv (the stack under test), on 127.0.0.1.

    .venv/bin/python bench/serving_echo.py --port P
"""
from __future__ import annotations

import argparse
import signal
import sys

import orjson

from kilele_inference.server import uvicorn_config
from kilele_inference.settings import ServerConfig

HEADERS = [(b"content-type", b"application/json")]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    content = orjson.dumps(orjson.loads(body)) if scope["method"] == "POST" else b"{}"
    await send({"type": "http.response.start", "status": 200,
                "headers": HEADERS + [(b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    import uvicorn

    config = ServerConfig(host="127.0.0.1", port=args.port)  # kilele-serve's defaults otherwise
    server = uvicorn.Server(uvicorn_config(app, config))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.run()


if __name__ == "__main__":
    main()
