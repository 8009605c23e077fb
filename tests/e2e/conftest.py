"""The end-to-end suite keeps each test's outcome on its item, so a module fixture can print the
stack's logs when a test fails."""

from __future__ import annotations

import pytest


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
