"""Whether the tests run in CI (CI=true): .ci/run installed the system packages there, so a
test whose system dependency (a browser, poppler, a mount) is missing fails instead of skipping."""
import os


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
