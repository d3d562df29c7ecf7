"""An in-process Kubernetes API server for tests (kmock's emulator, with API-server semantics added)."""
