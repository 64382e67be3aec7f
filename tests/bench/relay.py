"""A byte relay: the floor of any gateway in the proxy bench.

It accepts connections and copies bytes both ways to the upstream, one upstream connection per
client connection, parsing nothing (so HTTP keep-alive and streams pass as they are). Run
pinned like the gateways (`bench_proxy.py --only relay,...`), its added latency is what the
machine charges any process between client and upstream — the hop to another CPU and back,
twice, and the event loop's wake-ups — before a single line of gateway code:

    python tests/bench/relay.py --listen 8080=127.0.0.1:9000 [--listen 8081=127.0.0.1:9001 ...]
"""

from __future__ import annotations

import argparse
import asyncio


class Pipe(asyncio.Protocol):
    """One direction's reader: what arrives is written to the peer's transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: asyncio.Transport | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.early.append(data)
        else:
            self.peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()

    def join(self, peer: asyncio.Transport) -> None:
        self.peer = peer
        for data in self.early:
            peer.write(data)
        self.early.clear()


def serve(routes: dict[int, tuple[str, int]]) -> None:
    """Relay each local port in `routes` to its upstream, until killed."""

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def accepting(upstream: tuple[str, int]):
            def accepted() -> Pipe:
                client = Pipe()

                async def connect() -> None:
                    try:
                        upstream_transport, upstream_side = await loop.create_connection(Pipe, *upstream)
                    except OSError:
                        if client.transport is not None:
                            client.transport.close()
                        return
                    upstream_side.join(client.transport)
                    client.join(upstream_transport)

                loop.create_task(connect())
                return client

            return accepted

        servers = [await loop.create_server(accepting(upstream), "127.0.0.1", port) for port, upstream in routes.items()]
        await asyncio.gather(*(server.serve_forever() for server in servers))

    try:
        import uvloop
    except ImportError:  # the same loop as `cockpit serve` when it is there
        asyncio.run(main())
    else:
        uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", action="append", required=True, help="PORT=HOST:PORT (repeatable)")
    args = parser.parse_args()
    routes = {}
    for item in args.listen:
        port, upstream = item.split("=", 1)
        host, upstream_port = upstream.rsplit(":", 1)
        routes[int(port)] = (host, int(upstream_port))
    serve(routes)


if __name__ == "__main__":
    main()
