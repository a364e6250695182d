"""HTTP layer: thin blueprints. Each view parses its request into a schema and calls one service."""
