"""An open-loop load of webhook notifications, in a process of its own: ``python -m bench.load < spec.json``.

The spec: {"url": ..., "rate": per second, "seconds": ..., "bodies": [JSON text, ...],
"connections": at most this many open at once, "reuse": requests per connection}.
Request *i* is due at start + i / rate whatever happened to earlier ones (open loop: a
slow server does not slow the offered load, so its latency shows), with body *i* modulo
the list. Latency is measured from the moment the request is written to the moment its
whole answer has been read.

Notifications reach a portal from many senders, not down one connection: each
connection here carries `reuse` requests (default 50) and is then closed, so new
connections keep arriving and every web worker gets its share of them.

Prints one JSON object: sent, seconds, the latencies in ms, the count per HTTP status,
transport errors, and how late the generator itself was in sending (its own lag).
"""

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


class Connection:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.used = 0

    async def post(self, host, path, body):
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
        ).encode() + body
        self.writer.write(request)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed by the server")
        status = int(status_line.split()[1])
        length, closing = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                closing = True
        if length:
            await self.reader.readexactly(length)
        return status, closing

    def close(self):
        self.writer.close()


async def run(spec):
    target = urlsplit(spec["url"])
    host, port = target.hostname, target.port or 80
    path = target.path + (f"?{target.query}" if target.query else "")
    bodies = [body.encode() for body in spec["bodies"]]
    rate, total = float(spec["rate"]), int(float(spec["rate"]) * float(spec["seconds"]))
    idle = []
    limit = asyncio.Semaphore(int(spec.get("connections", 64)))
    reuse = int(spec.get("reuse", 50))
    latencies, statuses, errors, lags = [], {}, [], []

    async def one(number, due):
        async with limit:
            lags.append(max(0.0, time.monotonic() - due))
            connection = idle.pop() if idle else None
            body = bodies[number % len(bodies)]
            try:
                started = time.monotonic()
                if connection is not None:
                    try:
                        status, closing = await connection.post(target.netloc, path, body)
                    except (OSError, ConnectionError, asyncio.IncompleteReadError):
                        # The server closed this idle keep-alive connection as we reused it;
                        # any HTTP client sends again on a new one, and so does Graph.
                        connection.close()
                        connection = None
                if connection is None:
                    connection = Connection(*await asyncio.open_connection(host, port))
                    status, closing = await connection.post(target.netloc, path, body)
                latencies.append((time.monotonic() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                connection.used += 1
                if closing or connection.used >= reuse:
                    connection.close()
                else:
                    idle.append(connection)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
                errors.append(f"{type(error).__name__}: {error}")
                if connection is not None:
                    connection.close()

    start = time.monotonic() + 0.2
    tasks = []
    for number in range(total):
        due = start + number / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(number, due)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    for connection in idle:
        connection.close()
    return {
        "sent": total,
        "seconds": elapsed,
        "latencies_ms": latencies,
        "statuses": statuses,
        "errors": len(errors),
        "error_examples": errors[:5],
        "max_lag_ms": max(lags, default=0) * 1000,
    }


def main():
    spec = json.load(sys.stdin)
    result = asyncio.run(run(spec))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
