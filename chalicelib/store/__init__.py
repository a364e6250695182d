"""DynamoDB persistence. pynamodb models live only in ``models.py``; repositories return entities."""
