"""A CRI client on Python grpcio (PyPI), for tests: grpcio's C core speaks
HTTP/2 to the daemon's unix socket with the `:authority` it chooses.

Usage: grpcio_client.py SOCKET CALLS_JSON
CALLS_JSON is a list of {"method": "/runtime.v1.RuntimeService/Version",
"request": HEX}; requests are serialized by the caller, so no generated
code is needed here. For each authority form the script prints one JSON
line per call: {"form", "authority", "method", "ok", "response" (hex) or
"code" and "details"}.
"""

import json
import sys

import grpc


def forms(socket):
    percent = socket.replace("/", "%2F")
    # (name, value of grpc.default_authority or None for grpcio's default)
    return [
        ("grpcio-default", None),
        ("socket-path", socket),
        ("percent-encoded-path", percent),
        ("empty", ""),
        ("localhost", "localhost"),
    ]


def main():
    socket, calls = sys.argv[1], json.loads(sys.argv[2])
    for name, authority in forms(socket):
        options = [] if authority is None else [("grpc.default_authority", authority)]
        with grpc.insecure_channel("unix://" + socket, options=options) as channel:
            for call in calls:
                stub = channel.unary_unary(call["method"])
                line = {"form": name, "authority": authority, "method": call["method"]}
                try:
                    response = stub(bytes.fromhex(call["request"]), timeout=30)
                    line.update(ok=True, response=response.hex())
                except grpc.RpcError as e:
                    line.update(ok=False, code=e.code().name, details=e.details())
                print(json.dumps(line), flush=True)
    print(json.dumps({"grpcio": grpc.__version__}), flush=True)


if __name__ == "__main__":
    main()
