"""The queue API (Cluster Serving's pub/sub inference): enqueue, read and dequeue results."""
from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import Call, endpoint
from chalicelib.queue_schemas import EnqueueRequest, queue_name, queue_uri
from chalicelib.services.queues import EnqueueIncomplete
from chalicelib.schemas_responses_serving import DequeuedOut, EnqueuedOut, QueueResultOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/queues/{name}/items", "POST", "Enqueue items [{uri, data}] for the app's model (1..100)",
          body=EnqueueRequest, status=202, response=EnqueuedOut)
def enqueue(call: Call, name: str) -> dict | Response:
    try:
        return services().queues.enqueue(call.user, queue_name(name), call.body.pairs())
    except EnqueueIncomplete as e:  # the error shape, plus which items to send again
        return Response(status_code=503, body={"error": {"code": e.code, "message": e.message,
                                                         "enqueued": e.enqueued, "failed": e.failed}})


@endpoint(bp, "/queues/{name}/results/{uri}", "GET", "The result of one item (404 while pending)",
          response=QueueResultOut)
def get_result(call: Call, name: str, uri: str) -> dict:
    return services().queues.get_result(call.user, queue_name(name), queue_uri(uri))


@endpoint(bp, "/queues/{name}/dequeue", "POST", "Every current result of the queue, deleted as it is read",
          response=DequeuedOut)
def dequeue(call: Call, name: str) -> dict:
    return services().queues.dequeue(call.user, queue_name(name))
