"""``imagine-bot`` in a child process, talking to a ``FakeDiscord`` instead of
Discord: ``python -m tests.fakes.discord_child <fake base url> run``. It points
discord.py at the fake exactly as ``FakeDiscord.install`` does in-process, then
runs the real command line."""

from __future__ import annotations

import sys

import discord.gateway
import discord.http
import yarl

from bots.cli import main


def run(argv: list[str]) -> int:
    base, *args = argv
    discord.http.Route.BASE = f"{base}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(
        base.replace("http://", "ws://", 1) + "/gw"
    )
    return main(args)


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
