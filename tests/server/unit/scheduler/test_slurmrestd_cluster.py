"""slurmrestd's nodes, partitions and reservations, on answers captured from Slurm 22.05.8."""

from __future__ import annotations

from firecrest_server.scheduler import slurmrestd_cluster as restjson

NODES = {
    "nodes": [
        {
            "name": "node1",
            "address": "127.0.0.1",
            "hostname": "localhost",
            "state": "idle",
            "state_flags": ["DRAIN"],
            "sockets": 128,
            "cores": 1,
            "threads": 1,
            "cpus": 128,
            "cpu_load": 1584,
            "free_memory": 13548,
            "features": "gpu,fast",
            "partitions": ["debug"],
            "weight": 1,
            "alloc_memory": 0,
            "alloc_cpus": 3,
            "idle_cpus": 125,
        },
        {"state": "idle"},  # no name: skipped
    ]
}
PARTITIONS = {
    "partitions": [
        {"flags": ["default"], "name": "debug", "state": "UP", "total_cpus": 128, "total_nodes": 1},
        {"flags": ["hidden"], "name": "secret", "state": "UP", "total_cpus": 2, "total_nodes": 1},
    ]
}
RESERVATIONS = {
    "reservations": [
        {
            "name": "maint",
            "node_list": "node1",
            "start_time": 100,
            "end_time": 200,
            "features": "",
        }
    ]
}


def test_nodes_as_sinfo_gives_them() -> None:
    [node] = restjson.nodes(NODES)
    assert node.name == "node1"
    assert node.state == ["IDLE", "DRAIN"]
    assert node.cpu_load == 15.84
    assert node.features == ["gpu", "fast"]
    assert (node.alloc_cpus, node.idle_cpus, node.alloc_memory) == (3, 125, None)
    assert (node.sockets, node.cores, node.threads, node.cpus) == (128, 1, 1, 128)


def test_hidden_partitions_only_when_asked() -> None:
    assert [p.name for p in restjson.partitions(PARTITIONS)] == ["debug"]
    shown = restjson.partitions(PARTITIONS, show_hidden=True)
    assert [(p.name, p.cpus, p.total_nodes, p.partition) for p in shown] == [
        ("debug", 128, 1, "UP"),
        ("secret", 2, 1, "UP"),
    ]


def test_reservation_state_follows_its_window() -> None:
    assert restjson.reservations(RESERVATIONS, now=150)[0].state == "active"
    [later] = restjson.reservations(RESERVATIONS, now=250)
    assert (later.state, later.features, later.node_list) == ("inactive", None, "node1")
    assert restjson.reservations({"reservations": None}) == []
