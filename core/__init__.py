"""imagine-bot's core: domain types, pricing, the job use case and vendor adapters.

Core never imports a chat platform library; frontends in ``bots/`` call into it.
"""
