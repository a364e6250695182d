"""The embedded local stack: moto in server mode, provisioning, the API server and local runners."""
