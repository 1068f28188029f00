"""Wait until a gRPC server reports SERVING on grpc.health.v1.Health/Check.

    python .ci/wait-for-health.py HOST:PORT [SECONDS] [PID]

Uses grpcio (installed with clients/python) with raw bytes, so it needs no
generated health stubs: an empty HealthCheckRequest asks for the server as a
whole, and b"\\x08\\x01" is a HealthCheckResponse with status SERVING. Gives up
early if PID (the server) has exited.
"""

import os
import sys
import time

import grpc

SERVING = b"\x08\x01"


def alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> int:
    address = sys.argv[1]
    deadline = time.monotonic() + float(sys.argv[2] if len(sys.argv) > 2 else 60)
    pid = int(sys.argv[3]) if len(sys.argv) > 3 else None
    last = "no answer"
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        while time.monotonic() < deadline:
            if not alive(pid):
                print(f"server (pid {pid}) exited before it was healthy", file=sys.stderr)
                return 1
            try:
                answer = check(b"", timeout=2)
                if answer == SERVING:
                    print(f"{address} is SERVING")
                    return 0
                last = f"status bytes {answer!r}"
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            time.sleep(0.5)
    print(f"{address} not healthy in time ({last})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
