"""Run the two demo applications from the credentials ``demo seed`` wrote:
``python -m demo_rp var/demo.json``."""

from __future__ import annotations

import asyncio
import json
import sys

import uvicorn

from demo_rp.app import create_rp

COLORS = {"cantine-scolaire": "#005b4f", "stationnement": "#6a1b9a"}
PAYMENTS = {"cantine-scolaire": "Payer la cantine du mois"}


async def _main(path: str) -> None:
    with open(path) as fh:
        data = json.load(fh)
    clients = list(data["clients"].values())
    servers = []
    for spec in clients:
        others = [c for c in clients if c is not spec]
        base = f"http://127.0.0.1:{spec['port']}"
        app = create_rp(
            name=spec["name"], issuer=data["issuer"], client_id=spec["client_id"],
            client_secret=spec["client_secret"], base_url=base,
            color=COLORS.get(spec["client_id"], "#005b4f"),
            other_app=(others[0]["name"], f"http://127.0.0.1:{others[0]['port']}/login")
            if others else None, payment=PAYMENTS.get(spec["client_id"]),
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=spec["port"], log_level="warning")
        servers.append(uvicorn.Server(config))
    await asyncio.gather(*(s.serve() for s in servers))


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1] if len(sys.argv) > 1 else "var/demo.json"))
