"""Local DynamoDB + SQS endpoints: moto's server, with one difference that matters here.

moto applies a DynamoDB write as check-then-act without a lock, so two concurrent conditional
writes to the same item can both pass their condition — real DynamoDB never lets that happen, and
Parley's exactly-once and no-lost-item guarantees rest on it. DynamoDB requests are therefore
handled one at a time; SQS stays concurrent (its long polls would otherwise stall everything).

Usage: endpoints.py -H 127.0.0.1 -p PORT
"""
import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app


class SerialDynamoDB:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with self.lock:
                # Consume the response inside the lock: the write happens while it is produced.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def main():
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
