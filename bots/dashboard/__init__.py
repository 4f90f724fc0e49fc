"""The admin dashboard: a read-only web page of the operator's figures, behind a
login token (see ``bots.dashboard.server``)."""
