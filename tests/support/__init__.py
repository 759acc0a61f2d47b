"""What several test files share that is not a fixture: the browser harness, the hostile
server, the key scan and hand-made history runs (fixtures are in tests/conftest.py)."""
