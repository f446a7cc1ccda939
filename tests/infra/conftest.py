"""The infra tests synthesise each stack variant once per session (jsii is slow to start)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.cdk_synth import Synthesised


def pytest_configure(config: pytest.Config) -> None:
    # jsii prints an end-of-life banner for Node 20 on every start; it is not our problem.
    # Set before any aws_cdk import (which starts jsii): the helpers are imported lazily
    # here, and test modules are imported only after this hook has run.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Synthesised:
    """The stack a bare `cdk deploy` makes: dev, plain HTTP, no integration enabled."""
    from tests.support.cdk_synth import synthesise

    return synthesise({}, tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod_stack(tmp_path_factory: pytest.TempPathFactory) -> Synthesised:
    """Prod with a certificate, a public URL, an alarm e-mail and every integration that
    scales out (all but the single-task Discord gateway)."""
    from tests.support.cdk_synth import PROD_CONTEXT, synthesise

    return synthesise(PROD_CONTEXT, tmp_path_factory.mktemp("cdk-prod"))
