"""The console chat: the same commands as the chat platforms, typed on a terminal.

It is what ``imagine-bot run`` starts when no platform token is set, so a newcomer
sees the whole flow (prices, credits, progress, results saved to a folder) on the
mock vendor with no account anywhere."""

from bots.console._chat import ConsoleChat, run_console

__all__ = ["ConsoleChat", "run_console"]
