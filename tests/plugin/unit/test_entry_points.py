"""The plugin distribution registers AiiDA's transport and scheduler entry points."""

from importlib.metadata import entry_points

import pytest


def _load(group: str, name: str):
    (entry_point,) = [ep for ep in entry_points(group=group) if ep.name == name]
    return entry_point.load()


def test_transport_entry_point_is_an_async_transport() -> None:
    from aiida.transports import AsyncTransport

    assert issubclass(_load("aiida.transports", "firecrest"), AsyncTransport)


def test_scheduler_entry_point_is_a_scheduler() -> None:
    from aiida.schedulers import Scheduler

    assert issubclass(_load("aiida.schedulers", "firecrest"), Scheduler)


def test_transport_can_be_instantiated() -> None:
    transport_class = _load("aiida.transports", "firecrest")
    transport = transport_class(
        machine="cluster", url="http://localhost", compute_resource="cluster", static_token="t"
    )
    assert not transport.is_open
    with pytest.raises(ValueError, match="verdi computer configure"):
        transport_class(machine="cluster")
