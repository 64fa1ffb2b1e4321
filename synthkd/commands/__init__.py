"""Command groups of the `synthkd` CLI; each module exposes `register(app)`."""
