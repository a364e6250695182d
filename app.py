"""Kilele's Chalice app: registers the blueprints. No logic lives here."""
from chalice import Chalice

from chalicelib import SERVICE_NAME
from chalicelib.api import auth, datasets, meta, models, users

app = Chalice(app_name=SERVICE_NAME)

for blueprint in (meta.bp, auth.bp, users.bp, datasets.bp, models.bp):
    app.register_blueprint(blueprint)
