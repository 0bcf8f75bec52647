"""Local DynamoDB + SQS endpoints: moto's server, with two differences that matter here.

1. moto applies a DynamoDB write as check-then-act without a lock, so two concurrent conditional
   writes to the same item can both pass their condition — real DynamoDB never lets that happen,
   and Parley's exactly-once and no-lost-item guarantees rest on it. DynamoDB requests are
   therefore handled one at a time; SQS stays concurrent (its long polls would otherwise stall
   everything).
2. moto's FIFO send recomputes every queue attribute, message counts included, for each message
   it adds, reading the clock once per queued message for each count: filling a queue with 1000
   messages took ~90 s (SQS itself: well under a second). The counts read the clock once.
3. moto's ReceiveMessage is not atomic, and a long poll keeps the FIFO groups it saw in flight
   when it started: two concurrent receivers can each get messages of the same group, so a
   contact's events could be handled out of order — SQS never lets that happen. Each receive pass
   runs under a lock; long polls wait between passes, outside it.
4. When several received messages of one FIFO group become visible again together (a failed
   batch), moto hands out the later ones first (see `release_visible_again`).
5. moto answers every DynamoDB Query by sorting the whole table first, so a query's cost grew
   with the table (a campaign over 5000 contacts timed out on every page); a table query reads
   its partition, an index query walks the items unsorted (its results are sorted anyway).
6. moto ignores TransactWriteItems' ClientRequestToken. DynamoDB makes the call idempotent with it
   for 10 minutes: the SDK fills it in and keeps it on its retries, so a retry after a lost answer
   (the transaction applied, the connection dropped) succeeds instead of failing its own
   conditions. The same token with other parameters is IdempotentParameterMismatchException.

Usage: endpoints.py -H 127.0.0.1 -p PORT
"""
import argparse
import io
import json
import os
import signal
import sys
import threading
import time

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.core.utils import unix_time_millis
from moto.sqs import models as sqs_models
from moto.dynamodb.models.table import Table



def _counts(queue):
    """(visible, not visible, delayed) with one clock reading, as SQS's approximate counts."""
    now = unix_time_millis()
    visible = invisible = delayed = 0
    for m in queue._messages:
        if now < m.delayed_until:
            delayed += 1
        if now > m.visible_at:
            if not now < m.delayed_until:
                visible += 1
        else:
            invisible += 1
    return visible, invisible, delayed


RECEIVE_LOCK = threading.Lock()


def release_visible_again(queue):
    """A received message whose visibility ran out is no longer in flight. moto notices that one
    message at a time while it walks the queue, so with two of a group coming back together the
    first is skipped (its group still looks busy because of the second) and the second is handed
    out before it — SQS would hand out the first again. Settle them all before the walk."""
    for message in [m for m in queue._pending_messages if m.visible]:
        queue._pending_messages.discard(message)


def atomic_fifo_receive():
    original = sqs_models.SQSBackend.receive_message

    def receive_message(self, queue_name, count, wait_seconds_timeout, visibility_timeout, *args, **kwargs):
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        while True:
            with RECEIVE_LOCK:
                release_visible_again(self.get_queue(queue_name))
                result = original(self, queue_name, count, 0, visibility_timeout, *args, **kwargs)
            if result or time.monotonic() >= deadline:
                return result
            time.sleep(0.05)

    sqs_models.SQSBackend.receive_message = receive_message


def fast_queue_counts():
    """moto reads the clock once per message per count, and recomputes every count for each
    message sent to a FIFO queue; one reading per count keeps the same numbers."""
    sqs_models.Queue.approximate_number_of_messages = property(lambda q: _counts(q)[0])
    sqs_models.Queue.approximate_number_of_messages_not_visible = property(lambda q: _counts(q)[1])
    sqs_models.Queue.approximate_number_of_messages_delayed = property(lambda q: _counts(q)[2])


QUERY_SCOPE = threading.local()


def partition_queries():
    """Queries read what DynamoDB would: a table query its partition, an index query every item
    (moto keeps no index) without sorting the table first. The results are the same items, in
    the order moto's query sorts them."""
    original_query = Table.query
    original_all_items = Table.all_items

    def all_items(self):
        scope = getattr(QUERY_SCOPE, "scope", None)
        if scope is None:
            return original_all_items(self)
        kind, hash_key = scope
        if kind == "partition":
            if hash_key not in self.items:
                return []
            part = self.items[hash_key]
            return list(part.values()) if self.range_key_attr else [part]
        if self.range_key_attr:
            return [item for part in self.items.values() for item in part.values()]
        return list(self.items.values())

    def query(self, hash_key, *args, **kwargs):
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        QUERY_SCOPE.scope = ("index", None) if index_name else ("partition", hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            QUERY_SCOPE.scope = None

    Table.all_items = all_items
    Table.query = query


IDEMPOTENCY_WINDOW_SECONDS = 600


class SerialDynamoDB:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        # ClientRequestToken -> (expires, parsed request, status, headers, response body)
        self.transactions = {}

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB"):
            with self.lock:
                if target.endswith(".TransactWriteItems"):
                    return self.transact_write(environ, start_response)
                # Consume the response inside the lock: the write happens while it is produced.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)

    def transact_write(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            # Compared as parsed JSON: the SDK serialises an item's attributes in any order.
            request = json.loads(body)
            token = request.get("ClientRequestToken")
        except ValueError:
            request, token = None, None
        now = time.monotonic()
        self.transactions = {t: v for t, v in self.transactions.items() if v[0] > now}
        if token and token in self.transactions:
            _, first_request, status, headers, answer = self.transactions[token]
            if first_request != request:
                error = json.dumps({
                    "__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                    "message": "Specified idempotency token has different parameters",
                }).encode()
                start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                                   ("Content-Length", str(len(error)))])
                return [error]
            start_response(status, headers)
            return [answer]
        seen = {}

        def capture(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, list(headers)
            return start_response(status, headers, exc_info)

        answer = b"".join(self.app(environ, capture))
        if token and seen.get("status", "").startswith("200"):
            self.transactions[token] = (now + IDEMPOTENCY_WINDOW_SECONDS, request, seen["status"], seen["headers"], answer)
        return [answer]


def main():
    fast_queue_counts()
    atomic_fifo_receive()
    partition_queries()
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, SerialDynamoDB(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
