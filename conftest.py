"""Root pytest configuration: shared fixtures live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.users",
    "tests.fixtures.processes",
]
