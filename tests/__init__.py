"""
axl's trial tests.

Hypothesis runs under one of two profiles, chosen here before any test module is imported (so
every C{@settings} decorator inherits it): C{ci} when C{$CI} is set (as C{.ci/run} runs),
derandomised with no deadline and more examples, so a CI run is reproducible and not at the
mercy of a loaded machine; C{dev} otherwise, random and quick. C{$AXL_HYPOTHESIS_PROFILE} picks
one explicitly.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=300,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("AXL_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
